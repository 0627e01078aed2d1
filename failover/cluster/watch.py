"""A cache of every key under an etcd prefix, kept current by a watch on its own thread.

It reads the prefix, then watches from the revision after that reading; a watch that
ends quietly (no change within the read timeout) is started again from where it left
off, a compacted revision or a lost member means reading everything again. While etcd
cannot be reached the cache keeps what it last knew and `error` says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from failover.cluster.etcd import KV, Etcd, EtcdError, WatchCompacted

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # seconds of silence after which a watch is started again
RETRY_CAP = 1.0  # seconds between attempts while etcd cannot be reached


class PrefixCache:
    """Every key under `prefix` (key -> KV); `on_change(changed keys)` runs on the watch
    thread after each change. `start()`, then `stop()`."""

    def __init__(self, client: Etcd, prefix: str,
                 on_change: Callable[[set[str]], None] | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.on_change = on_change
        self.items: dict[str, KV] = {}
        self.error: str | None = None
        self.synced = threading.Event()
        self.revision = 0
        self.ok_at = time.monotonic()  # when etcd last answered this cache
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch {self.prefix}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=READ_TIMEOUT + 2)

    def snapshot(self) -> dict[str, KV]:
        with self._lock:
            return dict(self.items)

    def _run(self) -> None:
        gap = 0.1
        while not self._stop.is_set():
            try:
                self._resync()
                gap = 0.1
                while not self._stop.is_set():
                    for revision, events in self.client.watch(
                            self.prefix, self.revision + 1, READ_TIMEOUT, self._stop):
                        changed = set()
                        with self._lock:
                            for ev in events:
                                changed.add(ev.kv.key)
                                if ev.type == "DELETE":
                                    self.items.pop(ev.kv.key, None)
                                else:
                                    self.items[ev.kv.key] = ev.kv
                            self.revision = max(self.revision, revision)
                        self.error = None
                        self.ok_at = time.monotonic()
                        if changed and self.on_change is not None:
                            self.on_change(changed)
                    # a quiet watch: make sure etcd is still there (and has quorum), so a
                    # cut-off instance says so instead of trusting a stale cache
                    if not self._stop.is_set():
                        self.client.revision(self.prefix)
                        self.ok_at = time.monotonic()
            except WatchCompacted:
                continue  # read everything again
            except EtcdError as exc:
                if self.error is None:
                    log.warning("event=etcd_watch_failed prefix=%s error=%r", self.prefix,
                                str(exc))
                self.error = str(exc)
                self._stop.wait(gap)
                gap = min(gap * 2, RETRY_CAP)
            except Exception as exc:  # never let the thread die silently
                log.exception("event=etcd_watch_crashed prefix=%s", self.prefix)
                self.error = f"watch failed: {exc!r}"
                self._stop.wait(RETRY_CAP)

    def _resync(self) -> None:
        kvs, revision = self.client.get_prefix(self.prefix)
        fresh = {kv.key: kv for kv in kvs}
        with self._lock:
            old = self.items
            self.items = fresh
            self.revision = revision
        self.error = None
        self.ok_at = time.monotonic()
        self.synced.set()
        changed = {k for k in set(old) | set(fresh)
                   if (old.get(k) is None) != (fresh.get(k) is None)
                   or (k in old and old[k].mod_revision != fresh[k].mod_revision)}
        if changed and self.on_change is not None:
            self.on_change(changed)
