"""The controller's HTTP endpoint: health, readiness, status, metrics, overrides.

GET / (the status page, HTML), /healthz (the loop is alive), /readyz (ready and not
degraded, with the reasons), /status (JSON), /metrics (Prometheus). POST /v1/drain,
/v1/restore, /v1/pin, /v1/unpin change overrides and need `Authorization: Bearer
<token>` (controller.token_env / token_file); without a configured token they are
refused.

Only a request addressed to this endpoint is answered: its `Host` must be the listen
address, `localhost`, a loopback address, any IP address when listening on a wildcard
address, or a name in controller.allowed_hosts; any other is 421, so a web page whose
name was rebound to this address (DNS rebinding) cannot read /status or /metrics. Every
answer says `nosniff` and `no-store`; the page carries a Content-Security-Policy that
allows nothing but its own style sheet. The controller's clock (`X-Failover-Clock`,
which `failover drill` reads) is sent only to a request carrying the API token.

It is served on the controller's event loop (asyncio protocol + llhttp, no thread per
connection), because a flood of connections must not take the interpreter from the
probes: at most MAX_CONNECTIONS are open (a new one drops the oldest that is still
sending its request), a request must arrive whole within REQUEST_TIMEOUT, headers over
HEADER_LIMIT are 431, a body over BODY_LIMIT is 413 (before it is read), and a response
not taken within WRITE_TIMEOUT is dropped. One request per connection: a request is
frozen when its message completes, and one pipelined after it is never answered (the
answer says `Connection: close`; a client sends it again on a new connection). After
its answer the connection is half-closed and what the client still sends is read and
dropped for up to LINGER seconds, so the answer is not lost to a reset. Bodies are
checked by strict models: a boolean is a JSON boolean, a reason at most 1 KiB, unknown
fields refused.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httptools
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from failover.errors import FailoverError
from failover.page import CSP

if TYPE_CHECKING:
    from failover.controller import Controller

log = logging.getLogger(__name__)
STALE_AFTER = 30.0  # /healthz fails when the loop has not published for this long
MAX_CONNECTIONS = 256
REQUEST_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0
LINGER = 2.0  # seconds a connection still reads (and drops) after its answer
LINGER_BYTES = 64 * 1024  # ... and at most this much
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
        # /status made fresh when read (None: `status` as it is)
        self.fresh: Callable[[], Awaitable[bytes]] | None = None


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
    network: str | None = Field(None, min_length=1, max_length=63,
                                description="one client network (networks:); absent: all")


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


@dataclass(frozen=True)
class Request:
    """One request as it stood when its message completed: bytes after it change nothing."""

    method: str
    target: str
    version: str  # "1.1", "1.0"
    headers: Mapping[str, str]  # lower-case names; the last line of a repeated header
    hosts: tuple[str, ...]  # every Host line, to refuse a request with two
    body: bytes


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           413: "Content Too Large", 421: "Misdirected Request",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable"}
# a Host header: a name or an IPv4 address, or an IPv6 address in brackets; a port
HOST = re.compile(r"(?:\[([0-9a-f:.]+)\]|([a-z0-9_.-]+))(?::[0-9]{1,5})?")


def bearer_matches(authorization: str, secret: str) -> bool:
    """Whether an Authorization header carries exactly `secret` as a bearer token."""
    scheme, _, given = authorization.partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return False  # an empty token never matches, even a secret configured blank
    return hmac.compare_digest(given.encode(), secret.encode())


def host_refusal(request: Request, listen: str, allowed: Collection[str]) -> Reply | None:
    """Why the endpoint does not answer a request addressed to its `Host`, or None.

    `listen` is the listen host (an address or a name); `allowed` the names and
    addresses of controller.allowed_hosts, in their config spelling.
    """
    if len(request.hosts) > 1:
        return _error(400, "more than one Host header")
    given = request.hosts[0].strip() if request.hosts else ""
    if not given:
        if request.version == "1.0":
            return None  # HTTP/1.0 clients need not send one
        return _error(400, "an HTTP/1.1 request needs a Host header")
    m = HOST.fullmatch(given.lower())
    name = (m.group(1) or m.group(2).rstrip(".")) if m else ""
    if not name:
        return _error(400, f"the Host header {given!r} is not a host name or address")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
            ipaddress.ip_address(name))
    except ValueError:
        if m is not None and m.group(1):
            return _error(400, f"the Host header {given!r} is not a host name or address")
        address = None
    if name == "localhost" or (name if address is None else str(address)) in allowed:
        return None
    try:
        bound: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
            ipaddress.ip_address(listen))
    except ValueError:
        bound = None
    if address is None:
        if name == listen.lower().rstrip("."):
            return None
    elif address.is_loopback or address == bound or (bound is not None
                                                     and bound.is_unspecified):
        # an address cannot be rebound: only a page of this endpoint's own origin reads it
        return None
    return _error(421, f"this endpoint does not answer to Host {given!r} (a guard against "
                       "DNS rebinding): reach it by its listen address or localhost, or "
                       "add the name to controller.allowed_hosts")


class ApiServer:
    """The endpoint on the running loop; `await start()`, `stop()`."""

    def __init__(self, host: str, port: int, controller: Controller, published: Published,
                 token: Callable[[], Token | None], change: Change, *,
                 allowed_hosts: Callable[[], Collection[str]] = lambda: (),
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.host, self._port = host.strip("[]"), port
        self.controller, self.published = controller, published
        self.token, self.change = token, change
        self.allowed_hosts = allowed_hosts  # read on each request: a reload changes it
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

    async def respond(self, request: Request) -> Reply:
        refused = host_refusal(request, self.host, self.allowed_hosts())
        if refused is not None:
            return refused
        reply = await self._route(request)
        token = self.token()
        if token is not None and bearer_matches(request.headers.get("authorization", ""),
                                                token.secret):
            # the controller's steady clock now: a drill on this machine maps the times in
            # the history onto its own clock with it, even after the wall clock stepped
            reply.headers["X-Failover-Clock"] = f"{self.controller.clock():.6f}"
        return reply

    async def _route(self, request: Request) -> Reply:
        method, path = request.method, request.target.split("?", 1)[0]
        if path.startswith("/v1/"):
            if method != "POST":
                return _error(405, f"{path} takes POST", {"Allow": "POST"})
            return await self._post(path, request.headers, request.body)
        if path not in ("/", "/healthz", "/readyz", "/status", "/metrics"):
            return _error(404, f"no such path {path}")
        if method not in ("GET", "HEAD"):
            return _error(405, f"{path} takes GET", {"Allow": "GET, HEAD"})
        p = self.published
        if path == "/":
            return Reply(200, await self._page(), "text/html; charset=utf-8",
                         {"Content-Security-Policy": CSP})
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
            return Reply(200, await p.fresh() if p.fresh is not None else p.status)
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

    async def _post(self, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        action = path.removeprefix("/v1/")
        if action not in ACTIONS:
            return _error(404, f"no such path {path}")
        token = self.token()
        if token is None:
            return _error(403, "no API token configured (controller.token_env or "
                               "token_file): changes go through the CLI")
        if not bearer_matches(headers.get("authorization", ""), token.secret):
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
    """One client: its request parsed as it arrives and frozen when it is complete, one
    reply, then closed; whatever follows the request is never answered."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: dict[str, str] = {}
        self.hosts: list[str] = []
        self.body = bytearray()
        self.header_bytes = 0
        self.problem: Reply | None = None
        self.complete = False  # the request arrived whole (or was refused)
        self.answered = False  # one reply per connection, however it came about
        self.dropped_bytes = 0  # read after the request, never parsed
        self.timer: asyncio.TimerHandle | None = None
        self.linger: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.admit(self)
        self.timer = asyncio.get_running_loop().call_later(self.server.request_timeout,
                                                           self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self.complete:
            self._drop(len(data))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # a request asking for one was refused in on_message_complete
        except httptools.HttpParserError:
            self.problem = self.problem or _error(400, "not an HTTP/1.1 request")
        if self.problem is not None and not self.complete:  # (not a pipelined one's)
            self._send(self.problem)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)
        for timer in (self.timer, self.linger):
            if timer is not None:
                timer.cancel()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # llhttp callbacks; once a request is complete, llhttp goes on parsing what was
    # pipelined after it in the same read: the request was frozen, that is never answered
    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if self.problem is None:
            key = name.decode("latin-1").lower()
            self.headers[key] = value.decode("latin-1")
            if key == "host":
                self.hosts.append(self.headers[key])

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
        if self.parser.should_upgrade():
            self.problem = _error(400, "protocol upgrades are not served")
            return
        self.complete = True
        assert self.transport is not None
        self.transport.pause_reading()
        request = Request(self.parser.get_method().decode("latin-1"),
                          self.url.decode("latin-1"),
                          self.parser.get_http_version(), dict(self.headers),
                          tuple(self.hosts), bytes(self.body))
        self.task = asyncio.get_running_loop().create_task(self._answer(request))

    # the rest
    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > HEADER_LIMIT and self.problem is None:
            self.problem = _error(431, f"the request line and headers are limited to "
                                       f"{HEADER_LIMIT} bytes")

    async def _answer(self, request: Request) -> None:
        try:
            reply = await self.server.respond(request)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must cost one request, not the controller
            log.exception("event=api_error path=%s", request.target)
            reply = _error(500, "internal error; see the controller's log")
        if request.method == "HEAD":
            reply = Reply(reply.code, b"", reply.ctype, {
                **reply.headers, "Content-Length": str(len(reply.body))})
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.complete = True
        transport = self.transport
        if transport is None or transport.is_closing() or self.answered:
            return
        self.answered = True
        headers = {"Content-Type": reply.ctype, "Content-Length": str(len(reply.body)),
                   "Connection": "close", "Server": "failover",
                   # no browser guesses another type (a JSON error is never HTML), and
                   # no cache keeps endpoint addresses or overrides
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                   **reply.headers}
        head = f"HTTP/1.1 {reply.code} {REASONS.get(reply.code, 'Error')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        transport.write(head.encode("latin-1") + reply.body)
        loop = asyncio.get_running_loop()
        if transport.can_write_eof():
            # closing with unread bytes (a pipelined request) would reset the connection
            # and could take the answer with it: end our side, drop what still comes
            transport.write_eof()
            transport.resume_reading()
            self.linger = loop.call_later(LINGER, transport.close)
        else:
            transport.close()
        if self.timer is not None:
            self.timer.cancel()
        # a client that does not take its reply is dropped rather than kept
        self.timer = loop.call_later(WRITE_TIMEOUT, self.abort)

    def _drop(self, n: int) -> None:
        self.dropped_bytes += n
        if self.dropped_bytes > LINGER_BYTES and self.transport is not None:
            self.transport.close()

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
