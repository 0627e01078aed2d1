"""The controller's HTTP endpoint: health, readiness, status, metrics, overrides.

GET / (the status page, HTML), /healthz (the loop is alive), /readyz (ready and not
degraded, with the reasons), /status (JSON), /metrics (Prometheus). POST /v1/drain,
/v1/restore, /v1/pin, /v1/unpin change overrides and need `Authorization: Bearer
<token>` (controller.token_env / token_file); without a configured token they are
refused.

It is served on the controller's event loop (asyncio protocol + llhttp, no thread per
connection), because a flood of connections must not take the interpreter from the
probes: at most MAX_CONNECTIONS are open (a new one drops the oldest that is still
sending its request), a request must arrive whole within REQUEST_TIMEOUT, headers over
HEADER_LIMIT are 431, a body over BODY_LIMIT is 413 (before it is read), and a response
not taken within WRITE_TIMEOUT is dropped. Bodies are checked by strict models: a
boolean is a JSON boolean, a reason at most 1 KiB, unknown fields refused.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httptools
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from failover.errors import FailoverError

if TYPE_CHECKING:
    from failover.controller import Controller

log = logging.getLogger(__name__)
STALE_AFTER = 30.0  # /healthz fails when the loop has not published for this long
MAX_CONNECTIONS = 256
REQUEST_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0
HEADER_LIMIT = 16 * 1024
BODY_LIMIT = 16 * 1024
REASON_LIMIT = 1024
ACTIONS = ("drain", "restore", "pin", "unpin")
PAGE_REFRESH = 2.0  # seconds a built status page is served again


class Published:
    """What the loop publishes for the endpoint: swapped whole, never mutated."""

    def __init__(self) -> None:
        self.status: bytes = b"{}"
        self.ready = False
        self.problems: tuple[str, ...] = ()  # why the controller is degraded, if it is
        self.at = time.monotonic()


@dataclass(frozen=True)
class Token:
    """The bearer token changes need, and its name for the history (its env var or file)."""

    name: str
    secret: str


# ------------------------------------------------------------------------ bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field("via API", max_length=REASON_LIMIT)
    by: str | None = Field(None, min_length=1, max_length=128,
                           description="who asks, for the history (the token is named too)")


class RegionBody(_Body):
    """POST /v1/restore."""

    region: str = Field(min_length=1, max_length=255)


class NameBody(_Body):
    """POST /v1/unpin."""

    name: str = Field(min_length=1, max_length=255)


class _Lasting(BaseModel):
    force: bool = Field(False, description="past the guard: a record left with no healthy "
                                           "region (drain), or a pin to an unhealthy region")
    for_: str | None = Field(None, alias="for", max_length=32,
                             description="expire after this long: 30m, 2h30m, 1d")
    expires: float | None = Field(None, allow_inf_nan=False,
                                  description="expire at this time (epoch seconds)")


class DrainBody(RegionBody, _Lasting):
    """POST /v1/drain."""


class PinBody(NameBody, _Lasting):
    """POST /v1/pin."""

    region: str = Field(min_length=1, max_length=255)


BODIES: dict[str, type[_Body]] = {"drain": DrainBody, "restore": RegionBody,
                                  "pin": PinBody, "unpin": NameBody}


def parse_body(action: str, raw: bytes) -> _Body:
    """The body of a change, checked; raises ValueError with a message for the client."""
    try:
        data = json.loads(raw or b"{}", parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    try:
        return BODIES[action].model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False))) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"the body is not JSON: {name} is not a JSON number")


# ------------------------------------------------------------------------ server

Change = Callable[[str, Any, str], Awaitable[str]]


@dataclass
class Reply:
    code: int
    body: bytes
    ctype: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}


class ApiServer:
    """The endpoint on the running loop; `await start()`, `stop()`."""

    def __init__(self, host: str, port: int, controller: Controller, published: Published,
                 token: Callable[[], Token | None], change: Change, *,
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.host, self._port = host.strip("[]"), port
        self.controller, self.published = controller, published
        self.token, self.change = token, change
        self.max_connections, self.request_timeout = max_connections, request_timeout
        self.open: dict[_Connection, None] = {}  # in arrival order: the oldest first
        self.dropped = 0  # connections dropped for the cap or a timeout
        self._server: asyncio.Server | None = None
        self._page_at: tuple[float, bytes] | None = None
        self._page_building: asyncio.Future[bytes] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: _Connection(self), self.host,
                                                    self._port, backlog=1024)
        except OSError as exc:
            raise FailoverError(f"cannot listen on {self.host}:{self._port}: "
                                f"{exc.strerror}") from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.open):
            conn.abort()

    def admit(self, conn: _Connection) -> None:
        if len(self.open) >= self.max_connections:
            # the oldest connection still sending its request makes room: a slow client
            # cannot hold the endpoint, an operator's request (milliseconds) gets through
            oldest = next((c for c in self.open if not c.complete), None)
            if oldest is not None:
                self.dropped += 1
                oldest.abort()
        self.open[conn] = None

    def forget(self, conn: _Connection) -> None:
        self.open.pop(conn, None)

    # ---------------------------------------------------------------- routing

    async def respond(self, method: str, path: str, headers: dict[str, str],
                      body: bytes) -> Reply:
        path = path.split("?", 1)[0]
        if path.startswith("/v1/"):
            if method != "POST":
                return _error(405, f"{path} takes POST", {"Allow": "POST"})
            return await self._post(path, headers, body)
        if path not in ("/", "/healthz", "/readyz", "/status", "/metrics"):
            return _error(404, f"no such path {path}")
        if method not in ("GET", "HEAD"):
            return _error(405, f"{path} takes GET", {"Allow": "GET, HEAD"})
        p = self.published
        if path == "/":
            return Reply(200, await self._page(), "text/html; charset=utf-8")
        if path == "/healthz":
            fresh = time.monotonic() - p.at < STALE_AFTER
            return Reply(200 if fresh else 503, b"ok\n" if fresh else b"stalled\n", "text/plain")
        if path == "/readyz":
            if not p.ready:
                return Reply(503, b"waiting for the first probe round\n", "text/plain")
            if p.problems:
                lines = "degraded:\n" + "".join(f"- {why}\n" for why in p.problems)
                return Reply(503, lines.encode(), "text/plain")
            return Reply(200, b"ready\n", "text/plain")
        if path == "/status":
            return Reply(200, p.status)
        # 10,000 endpoints are a megabyte of exposition: rendered off the loop
        exposition = await asyncio.get_running_loop().run_in_executor(
            None, self.controller.metrics.render)
        return Reply(200, exposition, "text/plain; version=0.0.4; charset=utf-8")

    async def _page(self) -> bytes:
        """The status page, built on a thread at most every PAGE_REFRESH seconds however
        many ask (a refreshing browser on every laptop of an incident call)."""
        if self._page_at is not None and time.monotonic() - self._page_at[0] < PAGE_REFRESH:
            return self._page_at[1]
        if self._page_building is None or self._page_building.done():
            make = self.controller.page_maker()
            self._page_building = asyncio.get_running_loop().run_in_executor(None, make)
        body = await asyncio.shield(self._page_building)
        self._page_at = (time.monotonic(), body)
        return body

    async def _post(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        action = path.removeprefix("/v1/")
        if action not in ACTIONS:
            return _error(404, f"no such path {path}")
        token = self.token()
        if token is None:
            return _error(403, "no API token configured (controller.token_env or "
                               "token_file): changes go through the CLI")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), token.secret.encode())):
            return _error(401, "missing or wrong bearer token",
                          {"WWW-Authenticate": 'Bearer realm="failover"'})
        try:
            model = parse_body(action, body)
        except ValueError as exc:
            return _error(400, str(exc))
        actor = f"api token {token.name}" + (f" for {model.by}" if model.by else "")
        try:
            message = await self.change(action, model, actor)
        except FailoverError as exc:
            return _error(400, str(exc))
        return Reply(200, json.dumps({"ok": True, "message": message}).encode() + b"\n")


def _error(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(code, json.dumps({"error": message}).encode() + b"\n",
                 headers=headers or {})


class _Connection(asyncio.Protocol):
    """One client: its request parsed as it arrives, one reply, then closed."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.header_bytes = 0
        self.problem: Reply | None = None
        self.complete = False  # the request arrived whole (or was refused)
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.admit(self)
        self.timer = asyncio.get_running_loop().call_later(self.server.request_timeout,
                                                           self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self.complete:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.problem = self.problem or _error(400, "protocol upgrades are not served")
        except httptools.HttpParserError:
            self.problem = self.problem or _error(400, "not an HTTP/1.1 request")
        if self.problem is not None:
            self._send(self.problem)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        if self.timer is not None:
            self.timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # llhttp callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if self.problem is None:
            self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length", "0").strip() or "0"
        if not length.isdigit() or int(length) > BODY_LIMIT:
            self.problem = self.problem or _error(
                413, f"the body is limited to {BODY_LIMIT} bytes")

    def on_body(self, body: bytes) -> None:
        if self.problem is None:
            self.body += body
            if len(self.body) > BODY_LIMIT:
                self.problem = _error(413, f"the body is limited to {BODY_LIMIT} bytes")

    def on_message_complete(self) -> None:
        if self.problem is not None or self.complete:
            return
        self.complete = True
        assert self.transport is not None
        self.transport.pause_reading()
        method = self.parser.get_method().decode("latin-1")
        path = self.url.decode("latin-1")
        self.task = asyncio.get_running_loop().create_task(self._answer(method, path))

    # the rest
    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > HEADER_LIMIT and self.problem is None:
            self.problem = _error(431, f"the request line and headers are limited to "
                                       f"{HEADER_LIMIT} bytes")

    async def _answer(self, method: str, path: str) -> None:
        try:
            reply = await self.server.respond(method, path, self.headers, bytes(self.body))
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must cost one request, not the controller
            log.exception("event=api_error path=%s", path)
            reply = _error(500, "internal error; see the controller's log")
        if method == "HEAD":
            reply = Reply(reply.code, b"", reply.ctype, {
                **reply.headers, "Content-Length": str(len(reply.body))})
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.complete = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        headers = {"Content-Type": reply.ctype, "Content-Length": str(len(reply.body)),
                   "Connection": "close",
                   # the controller's steady clock now: a drill on this machine maps the
                   # times in the history onto its own clock with it, even after the wall
                   # clock stepped
                   "X-Failover-Clock": f"{self.server.controller.clock():.6f}",
                   "Server": "failover", **reply.headers}
        head = f"HTTP/1.1 {reply.code} {REASONS.get(reply.code, 'Error')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        transport.write(head.encode("latin-1") + reply.body)
        transport.close()
        if self.timer is not None:
            self.timer.cancel()
        # a client that does not take its reply is dropped rather than kept
        self.timer = asyncio.get_running_loop().call_later(WRITE_TIMEOUT, self.abort)

    def _timed_out(self) -> None:
        if not self.complete:
            self.server.dropped += 1
            self._send(_error(408, f"the request did not arrive within "
                                   f"{self.server.request_timeout:g} s"))
        else:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

