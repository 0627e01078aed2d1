"""One instance of a fleet: its lease, the election, and the vantages' views.

Every instance holds a lease (TTL `lease_ttl`) that a thread of its own renews (blocking
DNS and Route 53 calls never run on it, and the event loop's load cannot delay it). Its
vantage's view is published under that lease, so a dead instance's view expires with
it. The leader key `<prefix>/live/leader` is created under the leader's lease by a
transaction that succeeds only when the key is absent; its create revision is the
leader's epoch, the fencing token its DNS writes carry (it rises with every new
leader, cluster-wide). The same transaction, when it fails, returns the key: that is how
the leader checks, every renewal, that it still leads.

The leader writes only before its local deadline: when the last renewal that etcd
confirmed was *sent*, plus the TTL the lease had then, minus a margin. The lease cannot
have expired in etcd before that instant, whatever the network did to the answer. Past
it (etcd unreachable, the process paused) it stops writing, and when it learns the lease
is gone it is a follower.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from failover.cluster.etcd import (
    KV,
    Etcd,
    EtcdError,
    b64,
    get_op,
    if_absent,
    if_created,
    kv_of,
    put_op,
)
from failover.cluster.views import BadView, parse
from failover.cluster.watch import PrefixCache

log = logging.getLogger(__name__)


def margin_for(ttl: int) -> float:
    """How long before the lease could expire the leader stops writing."""
    return max(0.3, ttl / 4)


def leader_key(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/live/leader"


def read_leader(client: Etcd, prefix: str) -> dict[str, Any] | None:
    """The leader as etcd holds it (with its epoch), None when there is none."""
    kv = client.get(leader_key(prefix))
    return _leader_of(kv)


def _leader_of(kv: KV | None) -> dict[str, Any] | None:
    if kv is None:
        return None
    try:
        stored = kv.json()
    except (ValueError, RecursionError):
        stored = None
    # who leads is the key's lease and revision; what it says of itself is only shown
    data = {k: v for k, v in stored.items() if k in ("vantage", "host", "pid", "started")
            and isinstance(v, str | int | float)} if isinstance(stored, dict) else {}
    data["epoch"] = kv.create_revision
    data["lease"] = kv.lease
    return data


class Member:
    """This instance in the fleet: `start()`, `leading()`, `publish(view)`, `stop()`."""

    def __init__(self, client: Etcd, prefix: str, vantage: str, ttl: int,
                 on_change: Callable[[], None] | None = None) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/")
        self.vantage = vantage
        self.ttl = ttl
        self.margin = margin_for(ttl)
        self.interval = max(0.1, min(0.5, ttl / 6))
        self.on_change = on_change
        self.identity = {"vantage": vantage, "host": socket.gethostname(), "pid": os.getpid(),
                         "started": time.time()}
        self.lease: int | None = None
        self.generation = 0  # bumped with every new lease (a start, or after losing one)
        self.deadline = 0.0  # monotonic: no write at or after it
        self.epoch: int | None = None  # set while this instance leads
        self.led_since: float | None = None
        self.etcd_error: str | None = None
        self.lease_renewed: float | None = None  # wall time of the last confirmed renewal
        self._key = leader_key(self.prefix)
        self._views_prefix = f"{self.prefix}/live/vantages/"
        self.cache = PrefixCache(client, f"{self.prefix}/live/", self._changed)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hold_until = 0.0  # monotonic: no campaign before it (after resigning)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.cache.start()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Leave the fleet: the lease is revoked, so another instance leads at once and
        this vantage's view goes with it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout * len(self.client.endpoints) + 2)
        self.cache.stop()
        lease, self.lease, self.epoch = self.lease, None, None
        if lease is not None:
            try:
                self.client.revoke(lease)
            except EtcdError as exc:
                log.warning("event=lease_revoke_failed error=%r", str(exc))

    # ------------------------------------------------------------------- queries

    def leading(self) -> int | None:
        """The epoch, when this instance leads and its deadline has not passed."""
        epoch = self.epoch
        if epoch is None or time.monotonic() >= self.deadline:
            return None
        return epoch

    def leader(self) -> dict[str, Any] | None:
        """The leader as last seen (this instance's own view of the leader key)."""
        return _leader_of(self.cache.snapshot().get(self._key))

    def views(self) -> dict[str, KV]:
        """The live vantages' views by vantage name (this one's included); none while
        etcd has not answered for longer than a lease: nobody can tell they still live."""
        if self.cache.error is not None and time.monotonic() - self.cache.ok_at > self.ttl:
            return {}
        n = len(self._views_prefix)
        return {k[n:]: kv for k, kv in self.cache.snapshot().items()
                if k.startswith(self._views_prefix)}

    def problem(self) -> str | None:
        """Why this instance cannot take part (etcd unreachable or without quorum)."""
        error = self.etcd_error or self.cache.error
        if error is None:
            return None
        return (f"etcd unreachable or without quorum: {error}; no instance can be elected "
                "or write DNS until it answers (probing goes on)")

    # -------------------------------------------------------------------- writes

    def publish(self, view: dict[str, Any]) -> None:
        """Put this vantage's view under the lease (blocking: call it off the loop)."""
        data = json.dumps({**self.identity, **view}, separators=(",", ":"))
        with self._lock:
            lease = self.lease
        if lease is not None:
            self.client.put(self._views_prefix + self.vantage, data, lease)

    def resign(self, why: str, hold: float = 0.0) -> None:
        """Stop leading (a newer epoch fenced a write, or DNS is out of reach): the key
        is deleted if still ours, so the fleet elects again at once; with `hold`, this
        instance does not campaign for that many seconds (another one takes over)."""
        epoch = self.epoch
        if epoch is None:
            return
        self._hold_until = time.monotonic() + hold
        self._step_down(why)
        with contextlib.suppress(EtcdError):
            self.client.call("kv/txn", {
                "compare": [if_created(self._key, epoch)],
                "success": [{"request_delete_range": {"key": b64(self._key)}}],
                "failure": []})

    # ---------------------------------------------------------------- the thread

    def _changed(self, keys: set[str]) -> None:
        if self._key in keys and self._key not in self.cache.items:
            self._wake.set()  # no leader: campaign now, not at the next renewal
        if self.on_change is not None:
            self.on_change()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._renew()
                if not self._stop.is_set():
                    self._campaign()
                self.etcd_error = None
            except EtcdError as exc:
                if self.etcd_error is None:
                    log.warning("event=etcd_unreachable error=%r", str(exc))
                self.etcd_error = str(exc)
                if self.epoch is not None and time.monotonic() >= self.deadline:
                    self._step_down(f"lease deadline passed with etcd unreachable: {exc}")
            except Exception:  # never let the lease thread die silently
                log.exception("event=lease_thread_error")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _renew(self) -> None:
        sent = time.monotonic()
        if self.lease is None:
            lease = self.client.grant(self.ttl)
            with self._lock:
                self.lease = lease
                self.generation += 1
            self.deadline = sent + self.ttl - self.margin
            self.lease_renewed = time.time()
            log.info("event=lease_granted lease=%x ttl=%d", lease, self.ttl)
            # the view held under a lost lease is not put again: this instance was cut off
            # or paused, so what it saw is old; the controller publishes a fresh one
            if self.on_change is not None:
                self.on_change()
            return
        left = self.client.keepalive(self.lease)
        if left <= 0:
            log.warning("event=lease_lost lease=%x", self.lease)
            with self._lock:
                self.lease = None
            self._step_down("its lease expired")
            self._renew()
            return
        self.deadline = sent + left - self.margin
        self.lease_renewed = time.time()

    def _campaign(self) -> None:
        """Become the leader when there is none; check that this one still is. A leader
        checks with a read; a follower campaigns (a transaction: an etcd write) only when
        its watch does not show another live leader, so at rest the fleet writes nothing
        but lease renewals."""
        lease = self.lease
        assert lease is not None
        if self.epoch is not None:
            kv = self.client.get(self._key)
            if kv is None or kv.lease != lease:
                self._step_down("its leader key is gone or another's" if kv is None else
                                f"another instance leads (epoch {kv.create_revision})")
            return
        if time.monotonic() < self._hold_until:
            return  # it resigned so that another instance leads
        cached = self.cache.snapshot().get(self._key)
        if cached is not None and cached.lease != lease and self.cache.error is None \
                and self.cache.synced.is_set():
            return  # another leads; the watch wakes this thread when its key goes
        data = self.client.call("kv/txn", {
            "compare": [if_absent(self._key)],
            "success": [put_op(self._key, json.dumps(self.identity), lease)],
            "failure": [get_op(self._key)]})
        if data.get("succeeded"):
            self._lead(int(data["header"]["revision"]))
            return
        kvs = (data.get("responses") or [{}])[0].get("response_range", {}).get("kvs") or []
        if kvs:
            kv = kv_of(kvs[0])
            if kv.lease == lease:
                self._lead(kv.create_revision)  # ours already (this lease put it)

    def _lead(self, epoch: int) -> None:
        self.epoch = epoch
        self.led_since = time.time()
        log.info("event=leader_elected vantage=%s epoch=%d", self.vantage, epoch)
        if self.on_change is not None:
            self.on_change()

    def _step_down(self, why: str) -> None:
        if self.epoch is None:
            return
        log.warning("event=leader_stepped_down vantage=%s epoch=%d reason=%r", self.vantage,
                    self.epoch, why)
        self.epoch = None
        self.led_since = None
        if self.on_change is not None:
            self.on_change()


def fleet_view(client: Etcd, prefix: str,
               allowed: Collection[str] | None = None) -> dict[str, Any]:
    """The fleet as etcd holds it now (for `failover status` from any machine): the
    leader with its epoch, and every live vantage with what it sees down; a vantage not
    in `allowed` (controller.cluster.vantages) or whose view cannot be read is listed
    with why it does not count."""
    kvs, _ = client.get_prefix(f"{prefix.rstrip('/')}/live/")
    by_key = {kv.key: kv for kv in kvs}
    views_prefix = f"{prefix.rstrip('/')}/live/vantages/"
    vantages: list[dict[str, Any]] = []
    for key, kv in sorted(by_key.items()):
        if not key.startswith(views_prefix):
            continue
        vantage = key[len(views_prefix):]
        try:
            view = parse(kv.value)
        except BadView as exc:
            vantages.append({"vantage": vantage, "counted": False,
                             "why": f"its view cannot be read: {exc}"})
            continue
        entry = {"vantage": vantage, "host": view.host, "pid": view.pid,
                 "reported_at": view.at,
                 "sees_down": sorted({e for (e, _), st in view.checks.items()
                                      if not st.healthy})}
        if allowed is not None and vantage not in allowed:
            entry.update(counted=False, why="not in controller.cluster.vantages")
        vantages.append(entry)
    leader = _leader_of(by_key.get(leader_key(prefix)))
    return {"leader": None if leader is None else {
        k: leader.get(k) for k in ("vantage", "host", "pid", "epoch", "started")},
        "vantages": vantages}
