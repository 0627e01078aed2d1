"""One probe of one target, with Route 53's timing and health rules.

HTTP(S): a TCP connection within `connect_timeout` (4 s), then (TLS handshake and) a
status line within `response_timeout` (2 s); 2xx and 3xx are healthy and redirects are
not followed. STR_MATCH types then need the search string within the first 5,120 bytes
of the body, read within `body_timeout` (2 s). TCP: a connection within
`connect_timeout` (10 s). A fresh connection every time, aborted when done so that tens
of thousands of checks leave no TIME_WAIT sockets behind.

Responses are parsed by httptools (llhttp, Node.js's HTTP/1.1 parser) on a bare asyncio
protocol: about a third of the CPU of streams + h11, which is what lets one core check
tens of thousands of endpoints.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from typing import Any

import httptools

from failover.probes import plain
from failover.probes.plain import request_bytes
from failover.probes.result import ProbeResult
from failover.probes.target import BODY_LIMIT, ProbeTarget


class ProbeFailed(Exception):
    """A probe failure with the sentence to report."""


@functools.cache
def tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """A shared client TLS context: verifying (the default) or not (as Route 53); with
    `ca_file`, the CAs in that PEM file are trusted besides the system's (an internal CA).
    Raises OSError or ssl.SSLError when the file cannot be read as certificates."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx




class _Exchange(asyncio.Protocol):
    """One request/response on a fresh connection; futures resolve as the answer arrives."""

    def __init__(self, want_body: bool) -> None:
        loop = asyncio.get_running_loop()
        self.status: asyncio.Future[int] = loop.create_future()
        self.body_done: asyncio.Future[bytes] | None = loop.create_future() if want_body else None
        self.body = bytearray()
        self.parser: Any = httptools.HttpResponseParser(self)
        self.transport: Any = None
        self.done = False  # set by the prober before it aborts: nobody awaits any more

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProbeFailed(f"invalid HTTP response: {exc}"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done:
            return
        if isinstance(exc, ConnectionResetError):
            self._fail(ProbeFailed("connection reset by the endpoint"))
        self._fail(ProbeFailed("connection closed before a response"))
        self._finish_body()

    # httptools callbacks
    def on_headers_complete(self) -> None:
        if not self.status.done():
            self.status.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.body_done is not None and len(self.body) < BODY_LIMIT:
            self.body += body
            if len(self.body) >= BODY_LIMIT:
                self._finish_body()

    def on_message_complete(self) -> None:
        self._finish_body()

    def _finish_body(self) -> None:
        if self.body_done is not None and not self.body_done.done():
            self.body_done.set_result(bytes(self.body[:BODY_LIMIT]))

    def _fail(self, exc: Exception) -> None:
        if not self.status.done():
            self.status.set_exception(exc)


async def probe(target: ProbeTarget) -> ProbeResult:
    """Probe a target once. Never raises for endpoint trouble: failures are results."""
    loop = asyncio.get_running_loop()
    if plain.is_plain(target):
        # no TLS and an address to connect to: the same probe by callbacks
        done: asyncio.Future[ProbeResult] = loop.create_future()
        running = plain.PlainProbe(loop, target, done.set_result)
        try:
            return await done
        finally:
            running.cancel()
    at = time.time()
    t0 = time.perf_counter()
    exchange = _Exchange(want_body=target.search is not None)
    transport: Any = None
    connect_ms: float | None = None
    try:
        try:
            async with asyncio.timeout(target.connect_timeout):
                ip = target.ip or await _resolve(loop, target)
                transport, _ = await loop.create_connection(
                    lambda: exchange, ip, target.port,
                    local_addr=(target.source, 0) if target.source else None)
        except TimeoutError:
            raise ProbeFailed(f"timeout after {target.connect_timeout:g} s connecting to "
                              f"{target.where}") from None
        t1 = time.perf_counter()
        connect_ms = (t1 - t0) * 1000
        if target.type == "TCP":
            return ProbeResult(True, f"connected in {connect_ms:.1f} ms", at, connect_ms)
        try:
            async with asyncio.timeout(target.response_timeout):
                if target.tls:
                    transport = await loop.start_tls(
                        transport, exchange, tls_context(target.verify_tls, target.ca_file),
                        server_hostname=_server_name(target, ip))
                    exchange.transport = transport
                transport.write(request_bytes(target.path, target.host))
                status = await exchange.status
        except TimeoutError:
            raise ProbeFailed(f"timeout after {target.response_timeout:g} s waiting for the "
                              "response") from None
        first_byte_ms = (time.perf_counter() - t1) * 1000
        if not 200 <= status < 400:
            return ProbeResult(False, f"status {status}", at, connect_ms, first_byte_ms)
        if exchange.body_done is None or target.search is None:
            return ProbeResult(True, f"status {status}", at, connect_ms, first_byte_ms)
        try:
            async with asyncio.timeout(target.body_timeout):
                body = await exchange.body_done
        except TimeoutError:
            raise ProbeFailed(f"timeout after {target.body_timeout:g} s reading the body") from None
        if target.search in body:
            return ProbeResult(True, f"status {status}, search string found", at, connect_ms,
                               first_byte_ms)
        return ProbeResult(False, f"search string not found in first {BODY_LIMIT:,} bytes", at,
                           connect_ms, first_byte_ms)
    except ProbeFailed as exc:
        return ProbeResult(False, str(exc), at, connect_ms)
    except ConnectionRefusedError:
        return ProbeResult(False, "connection refused", at)
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(False, f"TLS certificate not valid: {exc.verify_message}", at, connect_ms)
    except ssl.SSLError as exc:
        return ProbeResult(False, f"TLS handshake failed: {exc.reason or exc}", at, connect_ms)
    except ConnectionResetError:
        return ProbeResult(False, "connection reset by the endpoint", at, connect_ms)
    except OSError as exc:
        return ProbeResult(False, f"connection failed: {exc.strerror or exc}", at, connect_ms)
    finally:
        exchange.done = True
        if transport is not None:
            transport.abort()
        # the parser and the protocol point at each other: break the cycle so that a
        # probe's objects are freed by reference counting, not by the cyclic GC, whose
        # pauses would otherwise show up as schedule lag
        exchange.parser = None
        exchange.transport = None


def _server_name(target: ProbeTarget, ip: str) -> str | None:
    if target.sni:
        return target.sni
    # verifying without a name checks the certificate against the IP address
    return ip if target.verify_tls else None


async def _resolve(loop: asyncio.AbstractEventLoop, target: ProbeTarget) -> str:
    try:
        infos = await loop.getaddrinfo(target.fqdn, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeFailed(f"cannot resolve {target.fqdn}: {exc.strerror}") from None
    if not infos:
        raise ProbeFailed(f"cannot resolve {target.fqdn}: no address")
    return str(infos[0][4][0])
