"""The etcd state store: what a fleet of controllers shares, under one key prefix.

    <prefix>/overrides/<kind>/<target>   an override (JSON)
    <prefix>/checks/<vantage>            a vantage's health state machines
    <prefix>/health/<vantage>            a vantage's latest health snapshot
    <prefix>/decisions/meta, /<i>        the leader's decisions (zlib'd JSON, in chunks)
    <prefix>/history/<ms>-<seq>-<vantage>  one event; keys sort by time
    <prefix>/live/...                    the election and the vantages' views (cluster)

The controller reads overrides from a cache kept current by a watch (a tick never waits
on etcd: while it cannot be reached the controller goes on with what it last knew);
the CLI reads and writes directly. Every call is bounded by the client's timeout.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import zlib
from collections.abc import Mapping

from failover.cluster.etcd import Etcd, EtcdError, b64, prefix_end, put_op
from failover.cluster.watch import PrefixCache
from failover.health import CheckState, HealthSnapshot
from failover.state import codec
from failover.state.store import Event, Override, OverrideChange, OverrideKind
from policies import Decision, DecisionKey

CHUNK = 512 * 1024  # bytes of compressed decisions per key (etcd takes 1.5 MiB requests)
MAX_DECISIONS_TEXT = 1 << 30  # bytes the decisions may inflate to (a zip bomb stops here)
MAX_OPS = 100  # operations per transaction (etcd's default limit is 128)
HISTORY_PAGE = 1000


class EtcdState:
    """State in etcd under `prefix`, for the instance probing from `vantage`."""

    read_only = False

    def __init__(self, client: Etcd, prefix: str, vantage: str) -> None:
        self.client = client
        self.prefix = prefix.rstrip("/")
        self.vantage = vantage
        self._cache: PrefixCache | None = None
        self._changed = threading.Event()
        self._seq = itertools.count()
        self._compact_next: int | None = None  # the revision to compact to at the next prune
        self._skip = codec.Skipped()  # keys of the wrong shape, named once each
        self._kept_checks: dict[str, CheckState] | None = None  # as last saved

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # ------------------------------------------------------------- the controller

    def watch(self) -> PrefixCache:
        """Keep the overrides in a cache a watch keeps current (the controller): after
        this, `overrides()` never waits on etcd and `changed_elsewhere()` is the watch's."""
        if self._cache is None:
            self._cache = PrefixCache(self.client, self._key("overrides") + "/",
                                      lambda _: self._changed.set())
            self._cache.start()
            self._cache.synced.wait(self.client.timeout * len(self.client.endpoints) + 1)
        return self._cache

    def replaced(self) -> str | None:
        return None

    def reopen(self) -> None:
        self.client.revision(self.prefix + "/")

    def changed_elsewhere(self) -> bool:
        if self._cache is None:
            return False
        changed = self._changed.is_set()
        self._changed.clear()
        return changed

    # ------------------------------------------------------------------ overrides

    def overrides(self) -> list[Override]:
        if self._cache is not None:
            if self._cache.error is not None and not self._cache.synced.is_set():
                raise EtcdError(self._cache.error)
            kvs = list(self._cache.snapshot().values())
        else:
            kvs, _ = self.client.get_prefix(self._key("overrides") + "/")
        found = (codec.override_from(codec.parsed(kv.value, kv.key, self._skip), kv.key,
                                     self._skip) for kv in kvs)
        return sorted((o for o in found if o is not None), key=lambda o: o.at)

    def set_override(self, override: Override) -> None:
        self.client.put(self._key("overrides", override.kind, override.target),
                        json.dumps(codec.override_data(override)))

    def clear_override(self, kind: OverrideKind, target: str) -> bool:
        return self.client.delete(self._key("overrides", kind, target)) > 0

    def change_override(self, change: OverrideChange) -> bool:
        event = put_op(self._history_key(change.event), json.dumps(codec.event_data(change.event)))
        if change.set is not None:
            o = change.set
            self.client.txn([], [put_op(self._key("overrides", o.kind, o.target),
                                        json.dumps(codec.override_data(o))), event])
            return True
        assert change.clear is not None
        key = self._key("overrides", change.clear.kind, change.clear.target)
        kv = self.client.get(key)
        held_now = None if kv is None else codec.override_from(
            codec.parsed(kv.value, kv.key, self._skip), kv.key, self._skip)
        if kv is None or held_now is None or held_now.at != change.clear.at:
            return False
        # removed only if nobody wrote it since it was read
        held, _ = self.client.txn(
            [{"key": b64(key), "target": "MOD", "result": "EQUAL",
              "mod_revision": str(kv.mod_revision)}],
            [{"request_delete_range": {"key": b64(key)}}, event])
        return held

    # ------------------------------------------------------ health and decisions

    def save_health(self, snapshot: HealthSnapshot) -> None:
        self.client.put(self._key("health", self.vantage),
                        json.dumps(codec.health_data(snapshot)))

    def load_health(self) -> HealthSnapshot | None:
        kv = self.client.get(self._key("health", self.vantage))
        if kv is None:
            return None
        return codec.health_from(codec.parsed(kv.value, kv.key, self._skip), kv.key, self._skip)

    def health_saved_at(self, vantage: str) -> float | None:
        """When `vantage` last saved its health snapshot (every 10 s while it runs, and on a
        change): when it was last seen; None when it never did, or it cannot be read."""
        kv = self.client.get(self._key("health", vantage))
        data = None if kv is None else codec.parsed(kv.value, kv.key, self._skip)
        at = data.get("at") if isinstance(data, dict) else None
        return float(at) if isinstance(at, int | float) and not isinstance(at, bool) else None

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self._kept_checks = dict(states)
        self.client.put(self._key("checks", self.vantage),
                        json.dumps(codec.checks_data(states)))

    def update_checks(self, states: Mapping[str, CheckState]) -> None:
        # one value per vantage: written whole, but only when a check changed
        if not states:
            return
        if self._kept_checks is None:
            self._kept_checks = self.load_checks()
        self.save_checks({**self._kept_checks, **states})

    def load_checks(self) -> dict[str, CheckState]:
        kv = self.client.get(self._key("checks", self.vantage))
        if kv is None:
            return {}
        return codec.checks_from(codec.parsed(kv.value, kv.key, self._skip), kv.key, self._skip)

    def save_decisions(self, decisions: list[Decision]) -> None:
        packed = zlib.compress(codec.decisions_text(decisions).encode(), 6)
        chunks = [packed[i:i + CHUNK] for i in range(0, len(packed), CHUNK)] or [b""]
        base = self._key("decisions")
        ops = [put_op(f"{base}/{i:06d}", c) for i, c in enumerate(chunks)]
        ops.append(put_op(f"{base}/meta", json.dumps({"chunks": len(chunks),
                                                      "by": self.vantage,
                                                      "at": time.time()})))
        # the old chunks past the new count go in the same transaction
        ops.append({"request_delete_range": {
            "key": base64.b64encode(f"{base}/{len(chunks):06d}".encode()).decode(),
            "range_end": base64.b64encode(f"{base}/meta".encode()).decode()}})
        if len(ops) > MAX_OPS:
            raise EtcdError(f"{len(packed)} bytes of decisions is more than one etcd "
                            "transaction holds")
        self.client.txn([], ops)

    def load_decisions(self) -> dict[DecisionKey, Decision]:
        kvs, _ = self.client.get_prefix(self._key("decisions") + "/")
        by_key = {kv.key.rsplit("/", 1)[1]: kv for kv in kvs}
        meta = by_key.get("meta")
        if meta is None:
            return {}
        info = codec.parsed(meta.value, meta.key, self._skip)
        n = info.get("chunks") if isinstance(info, dict) else None
        if info is codec.UNREADABLE:
            return {}
        if type(n) is not int or not 0 <= n < MAX_OPS:
            self._skip(meta.key, "not {chunks: N} with N a chunk count: decisions ignored")
            return {}
        try:
            packed = b"".join(by_key[f"{i:06d}"].value for i in range(n))
        except KeyError:
            return {}  # a save in between: the next reading finds it whole
        if not packed:
            return {}
        where = self._key("decisions") + "/"
        try:
            inflate = zlib.decompressobj()
            text = inflate.decompress(packed, MAX_DECISIONS_TEXT)
            if inflate.unconsumed_tail:
                raise ValueError(f"inflates to more than {MAX_DECISIONS_TEXT} bytes")
        except (zlib.error, ValueError) as exc:
            self._skip(where, f"not zlib'd decisions, ignored: {exc}")
            return {}
        return codec.decisions_from(codec.parsed(text, where, self._skip), where, self._skip)

    # -------------------------------------------------------------------- history

    def _history_key(self, e: Event) -> str:
        return self._key("history", f"{int(e.at * 1000):015d}-{next(self._seq) % 10**6:06d}"
                         f"-{self.vantage}")

    def record(self, events: list[Event]) -> None:
        ops = [put_op(self._history_key(e), json.dumps(codec.event_data(e))) for e in events]
        for i in range(0, len(ops), MAX_OPS):
            self.client.txn([], ops[i:i + MAX_OPS])

    def history(self, since: float | None = None, limit: int = 1000,
                kind: str | None = None) -> list[Event]:
        start = self._key("history", f"{int((since or 0.0) * 1000):015d}")
        end: str | bytes = prefix_end(self._key("history") + "/")
        out: list[Event] = []
        while len(out) < limit:
            page = min(HISTORY_PAGE, limit - len(out)) if kind is None else HISTORY_PAGE
            data = self.client.call("kv/range", {
                "key": b64(start), "range_end": b64(end), "limit": str(page),
                "sort_order": "DESCEND", "sort_target": "KEY"})
            kvs = data.get("kvs") or []
            for item in kvs:
                key = base64.b64decode(item.get("key", "")).decode(errors="replace")
                e = codec.event_from(codec.parsed(base64.b64decode(item.get("value", "")), key,
                                                  self._skip), key, self._skip)
                if e is not None and (kind is None or e.kind == kind):
                    out.append(e)
                    if len(out) >= limit:
                        break
            if len(kvs) < page:
                break
            end = base64.b64decode(kvs[-1]["key"])  # the next page: older keys (as bytes)
        out.reverse()
        return out

    def prune(self, older_than: float, keep: int) -> int:
        base = self._key("history") + "/"
        dropped = self.client.delete(base, end=self._key("history", f"{int(older_than * 1000):015d}"))
        extra = self.client.count(base) - keep
        if extra > 0:
            data = self.client.call("kv/range", {
                "key": b64(base), "range_end": b64(prefix_end(base)), "limit": str(extra),
                "keys_only": True, "sort_order": "ASCEND", "sort_target": "KEY"})
            kvs = data.get("kvs") or []
            if kvs:
                last = base64.b64decode(kvs[-1]["key"]).decode()
                dropped += self.client.delete(base, end=last + "\0")
        # etcd keeps every revision of every key until compacted: compact to the revision
        # of the previous prune (an hour ago), so a watch never loses what it is reading
        revision = self.client.revision(base)
        if self._compact_next is not None:
            self.client.compact(self._compact_next)
        self._compact_next = revision
        return dropped

    def close(self) -> None:
        if self._cache is not None:
            self._cache.stop()
            self._cache = None

