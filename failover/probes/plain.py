"""One probe of a plain target (HTTP, HTTP_STR_MATCH or TCP to an address, no TLS), run
by callbacks on a non-blocking socket: no task, no futures, one timer.

The same rules and the same sentences as `check.probe` (which hands such targets here):
a fresh connection within `connect_timeout`, a status line within `response_timeout`,
2xx and 3xx healthy, the search string within the first 5,120 bytes of a body read
within `body_timeout`. At thousands of checks a second, the coroutine's task, its two
timeout scopes, the protocol's futures and the transport were a third of a probe's
CPU; what is left is mostly the kernel's own work for a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import httptools

from failover.probes.result import ProbeResult
from failover.probes.target import BODY_LIMIT, ProbeTarget

Done = Callable[[ProbeResult], None]
CONNECTING, WAITING, READING, OVER = range(4)
LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends RST
USER_AGENT = "failover-health-check/1"


@functools.lru_cache(maxsize=65536)
def request_bytes(path: str, host: str) -> bytes:
    """The GET request for a path and Host header (config validation keeps both clean)."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii")


def is_plain(target: ProbeTarget) -> bool:
    """Whether `start` can probe this target (an address to connect to, no TLS)."""
    return target.ip is not None and not target.tls


class PlainProbe:
    """A probe in flight; `done` is called once with its result (unless cancelled)."""

    __slots__ = (
        "at",
        "body",
        "connect_ms",
        "done",
        "fd",
        "first_byte_ms",
        "loop",
        "parser",
        "pending",
        "phase",
        "sock",
        "status",
        "t0",
        "t1",
        "target",
        "timer",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, target: ProbeTarget,
                 done: Done) -> None:
        self.loop, self.target, self.done = loop, target, done
        self.at = time.time()
        self.t0 = time.perf_counter()
        self.t1 = 0.0
        self.phase = CONNECTING
        self.connect_ms: float | None = None
        self.first_byte_ms: float | None = None
        self.status = 0
        self.body: bytearray | None = None
        self.parser: Any = None
        self.pending = b""
        self.sock: socket.socket | None = None
        self.fd = -1
        self.timer: asyncio.TimerHandle | None = None
        ip = target.ip
        assert ip is not None
        try:
            sock = self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET,
                                             socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            self.fd = sock.fileno()
            if target.source is not None:  # controller.probe_source
                sock.bind((target.source, 0))
            err = sock.connect_ex((ip, target.port))
        except OSError as exc:
            loop.call_soon(self._os_error, exc.errno or 0)
            return
        self.timer = loop.call_at(
            loop.time() + target.connect_timeout, self._timed_out)
        if err == 0:
            loop.call_soon(self._connected)
        elif err == errno.EINPROGRESS:
            loop.add_writer(self.fd, self._connected)
        else:
            loop.call_soon(self._os_error, err)

    def cancel(self) -> None:
        """Stop the probe; `done` is not called."""
        self.phase = OVER
        self._close()

    # ------------------------------------------------------------------ the phases

    def _connected(self) -> None:
        if self.phase != CONNECTING:
            return
        sock = self.sock
        assert sock is not None
        self.loop.remove_writer(self.fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._os_error(err)
            return
        self.t1 = time.perf_counter()
        connect_ms = self.connect_ms = (self.t1 - self.t0) * 1000
        target = self.target
        if target.type == "TCP":
            self._finish(ProbeResult(True, f"connected in {connect_ms:.1f} ms", self.at,
                                     connect_ms))
            return
        self.phase = WAITING
        self._rearm(target.response_timeout)
        self.parser = httptools.HttpResponseParser(self)
        self.pending = request_bytes(target.path, target.host)
        self._send()
        if self.phase == WAITING:
            self.loop.add_reader(self.fd, self._readable)

    def _send(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            sent = sock.send(self.pending)
        except BlockingIOError:
            sent = 0
        except ConnectionResetError:
            self._lost("connection reset by the endpoint")
            return
        except OSError:
            self._lost("connection closed before a response")
            return
        self.pending = self.pending[sent:]
        if self.pending:  # never for a request this small, but not assumed
            self.loop.add_writer(self.fd, self._send_rest)

    def _send_rest(self) -> None:
        self.loop.remove_writer(self.fd)
        if self.phase in (WAITING, READING):
            self._send()

    def _readable(self) -> None:
        sock = self.sock
        if sock is None or self.phase == OVER:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._lost("connection reset by the endpoint")
            return
        except OSError:
            self._lost("connection closed before a response")
            return
        if not data:
            self._lost("connection closed before a response")
            return
        if self.parser is None:  # the message is complete: the rest is not read
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.phase == WAITING and not self.status:
                self._fail(f"invalid HTTP response: {exc}")
                return
        if self.phase == WAITING and self.status:
            self._status_seen()
        if self.phase == READING and self.body is not None and self.body_complete():
            self._body_read()

    def _status_seen(self) -> None:
        self.first_byte_ms = (time.perf_counter() - self.t1) * 1000
        status, target = self.status, self.target
        if not 200 <= status < 400:
            self._finish(ProbeResult(False, f"status {status}", self.at, self.connect_ms,
                                     self.first_byte_ms))
        elif target.search is None:
            self._finish(ProbeResult(True, f"status {status}", self.at, self.connect_ms,
                                     self.first_byte_ms))
        else:
            self.phase = READING
            self._rearm(target.body_timeout)
            if self.body is None:
                self.body = bytearray()

    def body_complete(self) -> bool:
        return self.parser is None or len(self.body or b"") >= BODY_LIMIT

    def _body_read(self) -> None:
        body = bytes((self.body or b"")[:BODY_LIMIT])
        search = self.target.search
        assert search is not None
        if search in body:
            self._finish(ProbeResult(True, f"status {self.status}, search string found",
                                     self.at, self.connect_ms, self.first_byte_ms))
        else:
            self._finish(ProbeResult(False, f"search string not found in first "
                                     f"{BODY_LIMIT:,} bytes", self.at, self.connect_ms,
                                     self.first_byte_ms))

    def _lost(self, why: str) -> None:
        """The endpoint closed or reset the connection."""
        if self.phase == WAITING and self.status:
            self._status_seen()
        if self.phase == READING:
            self._body_read()  # what arrived is what is searched
        elif self.phase == WAITING:
            self._fail(why)

    def _timed_out(self) -> None:
        t = self.target
        if self.phase == CONNECTING:
            self._fail(f"timeout after {t.connect_timeout:g} s connecting to {t.where}")
        elif self.phase == WAITING:
            self._fail(f"timeout after {t.response_timeout:g} s waiting for the response")
        elif self.phase == READING:
            self._fail(f"timeout after {t.body_timeout:g} s reading the body")

    def _os_error(self, err: int) -> None:
        if self.phase == OVER:
            return
        if err == errno.ECONNREFUSED:
            self._finish(ProbeResult(False, "connection refused", self.at))
        elif err == errno.ECONNRESET:
            self._fail("connection reset by the endpoint")
        elif err == errno.ETIMEDOUT and self.phase == CONNECTING:
            self._timed_out()
        else:
            self._fail(f"connection failed: {os.strerror(err)}")

    def _fail(self, reason: str) -> None:
        self._finish(ProbeResult(False, reason, self.at, self.connect_ms))

    def _rearm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(self.loop.time() + seconds, self._timed_out)

    def _finish(self, result: ProbeResult) -> None:
        if self.phase == OVER:
            return
        self.phase = OVER
        self._close()
        self.done(result)

    def _close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(self.fd)
            self.loop.remove_writer(self.fd)
            if self.t1:  # connected
                # aborted (RST), not closed: tens of thousands of checks a second must
                # leave no TIME_WAIT sockets behind
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
            sock.close()
        # the parser points back at this probe: break the cycle for reference counting
        self.parser = None

    # ----------------------------------------------------------- httptools callbacks

    def on_headers_complete(self) -> None:
        if not self.status:
            self.status = self.parser.get_status_code()
            if self.target.search is not None:
                self.body = bytearray()

    def on_body(self, body: bytes) -> None:
        got = self.body
        if got is not None and len(got) < BODY_LIMIT:
            got += body

    def on_message_complete(self) -> None:
        if self.body is not None:
            # the whole body is in: searched as it is (the parser is not needed any more)
            self.parser_done()

    def parser_done(self) -> None:
        self.parser = None


def start(target: ProbeTarget, done: Done) -> PlainProbe:
    """Probe a plain target (`is_plain`); `done(result)` is called in the loop thread."""
    return PlainProbe(asyncio.get_running_loop(), target, done)
