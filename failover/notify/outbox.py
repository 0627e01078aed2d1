"""One sink's outbox: notices wait in a bounded batch, a thread of its own sends them.

`offer` (on the event loop, or the decide thread) only coalesces into the batch under a
lock; the sink's thread sends the batch once it has settled (SETTLE seconds, so one
decide's thousand names are one message) and `min_interval` has passed since the last
message, retrying with backoff (tenacity) on timeouts, refused connections, 5xx and
429. A receiver that hangs, fails or cannot be reached holds only this thread: what
comes meanwhile coalesces into the next batch, up to MAX_ENTRIES distinct notices, and
beyond that is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential,
)
from tenacity.stop import stop_base

from failover.config.notify import PagerDutySink, SlackSink, WebhookSink
from failover.metrics import Metrics
from failover.notify import formats
from failover.notify.notice import Batch, Notice

log = logging.getLogger(__name__)

SETTLE = 0.5  # seconds a new batch waits for what comes with it (one decide's names)
BACKOFF_MAX = 8.0  # seconds: the longest wait between two attempts


class StopWhenClosing(stop_base):
    """Stop retrying once the outbox closes."""

    def __init__(self, closing: threading.Event) -> None:
        self.closing = closing

    def __call__(self, retry_state: Any) -> bool:
        return self.closing.is_set()


class Refused(Exception):
    """The receiver answered, and not with success."""

    def __init__(self, code: int) -> None:
        super().__init__(f"answered HTTP {code}")
        self.code = code


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, Refused):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, httpx.TransportError)


class Outbox:
    """A sink's batch, its sending thread and what it last did (for /status)."""

    def __init__(self, name: str, sink: SlackSink | PagerDutySink | WebhookSink,
                 target: tuple[str, str, bytes | None] | None, broken: str | None,
                 origin: formats.Origin, metrics: Metrics,
                 post: Callable[[httpx.Client, str, bytes, dict[str, str]], int] | None = None
                 ) -> None:
        self.name, self.sink, self.origin, self.metrics = name, sink, origin, metrics
        self.url, self.routing_key, self.hmac_key = target or ("", "", None)
        self.broken = broken  # why it cannot send (its URL or key could not be read)
        self.kinds = frozenset(sink.events)
        self.cond = threading.Condition()
        self.batch: Batch | None = None
        self.last_cut = -1e18  # monotonic: when the last batch left for sending
        self.closing = threading.Event()
        self.sent = self.failed = self.dropped = 0
        self.last: dict[str, Any] | None = None
        self.sending = False
        self._post = post or _post
        self.thread = threading.Thread(target=self._run, name=f"notify-{name}", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------- the caller's side

    def offer(self, notice: Notice) -> None:
        """Take a notice of a kind this sink is told (cheap: a dict update under a lock)."""
        if notice.kind not in self.kinds:
            return
        with self.cond:
            if self.batch is None:
                self.batch = Batch(time.monotonic())
            if not self.batch.add(notice):
                self.dropped += 1
                self.metrics.notify_dropped.labels(self.name).inc()
            self.cond.notify()

    def status(self) -> dict[str, Any]:
        """What /status shows of this sink."""
        with self.cond:
            waiting = self.batch.count if self.batch is not None else 0
        out: dict[str, Any] = {"sink": self.name, "type": self.sink.type,
                               "events": sorted(self.kinds), "sent": self.sent,
                               "failed": self.failed, "dropped": self.dropped,
                               "waiting": waiting, "sending": self.sending, "last": self.last}
        if self.broken:
            out["error"] = self.broken
        return out

    def close(self) -> None:
        """Stop: what waits is sent once, now, without retries; the thread ends."""
        self.closing.set()
        with self.cond:
            self.cond.notify()

    # --------------------------------------------------------------- the thread

    def _due(self) -> float | None:
        """Monotonic time the waiting batch may go; None when nothing waits."""
        if self.batch is None:
            return None
        if self.closing.is_set():
            return 0.0
        return max(self.batch.opened + SETTLE, self.last_cut + self.sink.min_interval)

    def _run(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(self.sink.timeout), trust_env=False) as client:
            while True:
                with self.cond:
                    while True:
                        due = self._due()
                        if due is None and self.closing.is_set():
                            return
                        now = time.monotonic()
                        if due is not None and now >= due:
                            break
                        self.cond.wait(None if due is None else due - now)
                    batch, self.batch = self.batch, None
                    self.last_cut = time.monotonic()
                assert batch is not None
                self.sending = True
                try:
                    self._deliver(client, batch)
                finally:
                    self.sending = False

    def _sleep(self, seconds: float) -> None:
        """Backoff between attempts, cut short when the outbox closes."""
        self.closing.wait(seconds)

    def _requests(self, batch: Batch) -> list[tuple[bytes, dict[str, str]]]:
        """The bodies (and headers) one batch is sent as."""
        headers = {"Content-Type": "application/json"}
        if isinstance(self.sink, PagerDutySink):
            return [(formats.encode(e), headers) for e in formats.pagerduty(
                batch, self.origin, self.routing_key, self.sink.severity)]
        if isinstance(self.sink, SlackSink):
            return [(formats.encode(formats.slack(batch, self.origin)), headers)]
        now = time.time()
        body = formats.encode(formats.webhook(batch, self.origin, now))
        if self.hmac_key is not None:
            stamp = f"{now:.3f}"
            headers = {**headers, formats.TIMESTAMP_HEADER: stamp,
                       formats.SIGNATURE_HEADER: formats.signature(self.hmac_key, stamp, body)}
        return [(body, headers)]

    def _deliver(self, client: httpx.Client, batch: Batch) -> None:
        started = time.time()
        kinds = sorted({e.kind for e in batch.ordered()})
        if self.broken:
            self._failed(batch, started, kinds, self.broken, None, 0)
            return
        for body, headers in self._requests(batch):
            attempts = 0

            def send(body: bytes = body, headers: dict[str, str] = headers) -> int:
                nonlocal attempts
                attempts += 1
                code = self._post(client, self.url, body, headers)
                if not 200 <= code < 300:
                    raise Refused(code)
                return code

            retrying = Retrying(
                stop=stop_any(stop_after_attempt(1 if self.closing.is_set()
                                                 else self.sink.attempts),
                              StopWhenClosing(self.closing)),
                wait=wait_exponential(multiplier=0.5, max=BACKOFF_MAX),
                retry=retry_if_exception(_retryable),
                sleep=self._sleep,
                reraise=True)
            try:
                code = retrying(send)
            except (Refused, httpx.HTTPError, RetryError, OSError) as exc:
                self._failed(batch, started, kinds, _said(exc), getattr(exc, "code", None),
                             attempts)
                return
        self.sent += 1
        self.metrics.notify_sent.labels(self.name).inc()
        self.last = {"at": started, "ok": True, "code": code, "kinds": kinds,
                     "notices": batch.count, "attempts": attempts,
                     "took_s": round(time.time() - started, 3)}

    def _failed(self, batch: Batch, started: float, kinds: list[str], why: str,
                code: int | None, attempts: int) -> None:
        self.failed += 1
        self.metrics.notify_failed.labels(self.name).inc()
        self.last = {"at": started, "ok": False, "code": code, "kinds": kinds,
                     "notices": batch.count, "attempts": attempts, "error": why,
                     "took_s": round(time.time() - started, 3)}
        # the sink's name and why, never its URL (it may hold a token)
        log.error("event=notify_failed sink=%s notices=%d attempts=%d error=%r",
                  self.name, batch.count, attempts, why)


def _said(exc: BaseException) -> str:
    """Why a delivery failed, in words that never include the URL."""
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within the timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    return type(exc).__name__


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> int:
    return client.post(url, content=body, headers=headers).status_code
