"""A fleet of loopback endpoints with scripted behaviour, for demos, drills, tests and benches.

Run as `python -m failover.fleet SPEC.json`: SPEC is a list of endpoints
`{"name", "host", "port" (0: any free port), "behaviour", "tls": {"cert", "key"}}`.
Once every listener is up it prints one JSON line `{"ready": {name: [host, port]}}`
and serves until SIGTERM/SIGINT. Only loopback hosts are accepted.

Behaviours:
  ok                 200 with body "ok"
  status:N           status N (e.g. status:503)
  redirect           302 to /elsewhere
  slow:S             200 after S seconds
  slow-from:A=S,...  200 after S seconds to a prober at address A (others: at once):
                     vantages that see different latencies
  hang               accept and read, never answer
  close              accept and close at once (a TCP check passes, HTTP fails)
  body:OFFSET:TEXT   200 whose body holds TEXT at byte OFFSET (padding 'x')
  echo               200 whose body is "host=<Host header> sni=<TLS server name>"
  flap               200 and 503 in turn, one per connection
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover.probes.runtime import run_loop


@dataclass(frozen=True)
class Behaviour:
    kind: str
    status: int = 200
    delay: float = 0.0
    body: bytes = b"ok\n"
    delays: tuple[tuple[str, float], ...] = ()  # by the prober's address

    def delay_for(self, peer: str) -> float:
        """The delay before answering a prober at `peer`."""
        for address, delay in self.delays:
            if address == peer:
                return delay
        return self.delay

    @classmethod
    def parse(cls, text: str) -> Behaviour:
        kind, _, arg = text.partition(":")
        if kind == "ok":
            return cls("ok")
        if kind == "status":
            return cls("ok", status=int(arg), body=f"status {arg}\n".encode())
        if kind == "redirect":
            return cls("redirect", status=302, body=b"")
        if kind == "slow":
            return cls("ok", delay=float(arg))
        if kind == "slow-from":
            pairs = [item.partition("=") for item in arg.split(",") if item]
            return cls("ok", delays=tuple((str(ipaddress.ip_address(a)), float(s))
                                          for a, _, s in pairs))
        if kind in ("hang", "close", "echo", "flap"):
            return cls(kind)
        if kind == "body":
            offset, _, needle = arg.partition(":")
            at = int(offset)
            body = b"x" * at + needle.encode()
            return cls("ok", body=body + b"x" * max(0, 6000 - len(body)))
        raise ValueError(f"unknown behaviour '{text}'")


_REASONS = {200: "OK", 302: "Found", 500: "Internal Server Error", 503: "Service Unavailable"}


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: text/plain\r\n{extra}"
            "Connection: close\r\n\r\n")
    return head.encode() + body


class Responder(asyncio.Protocol):
    """Answers one connection by its behaviour."""

    flips = 0  # shared by every connection of a flapping endpoint

    def __init__(self, behaviour: Behaviour, sni: dict[int, str]) -> None:
        self.behaviour = behaviour
        self.sni = sni
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        if self.behaviour.kind == "close":
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.answered or b"\r\n\r\n" not in self.buf:
            return
        self.answered = True
        b = self.behaviour
        if b.kind == "hang":
            return
        delay = b.delay
        if b.delays and self.transport is not None:
            peer = self.transport.get_extra_info("peername")
            delay = b.delay_for(str(peer[0]) if peer else "")
        if delay:
            asyncio.get_running_loop().call_later(delay, self._send)
        else:
            self._send()

    def _send(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        b = self.behaviour
        if b.kind == "redirect":
            t.write(_response(302, b"", "Location: /elsewhere\r\n"))
        elif b.kind == "echo":
            host = ""
            for line in self.buf.split(b"\r\n")[1:]:
                if line.lower().startswith(b"host:"):
                    host = line[5:].strip().decode()
            ssl_obj = t.get_extra_info("ssl_object")
            sni = self.sni.get(id(ssl_obj), "") if ssl_obj is not None else ""
            t.write(_response(200, f"host={host} sni={sni}\n".encode()))
        elif b.kind == "flap":
            Responder.flips += 1
            t.write(_response(200 if Responder.flips % 2 else 503, b"flap\n"))
        else:
            t.write(_response(b.status, b.body))
        t.close()


def _tls_context(cert: str, key: str, sni: dict[int, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def remember(obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni[id(obj)] = name or ""

    ctx.sni_callback = remember
    return ctx


def _in_own_netns() -> bool:
    """Whether this process runs in a network namespace made with `ip netns add` (one of
    /run/netns): there, every address is a test host the tests created, not something on
    a network."""
    try:
        me = os.stat("/proc/self/ns/net")
        named = [os.stat(os.path.join("/run/netns", n)) for n in os.listdir("/run/netns")]
    except OSError:
        return False
    return any((s.st_dev, s.st_ino) == (me.st_dev, me.st_ino) for s in named)


async def serve(spec: list[dict[str, Any]]) -> None:
    """Start every listener, print the ready line, serve until signalled."""
    loop = asyncio.get_running_loop()
    sni: dict[int, str] = {}
    servers = []
    ready: dict[str, list[Any]] = {}
    for item in spec:
        host = item.get("host", "127.0.0.1")
        if not ipaddress.ip_address(host).is_loopback and not _in_own_netns():
            raise SystemExit(f"fleet: {host} is not a loopback address (other addresses only "
                             "inside a network namespace of its own, a test host)")
        behaviour = Behaviour.parse(item.get("behaviour", "ok"))
        tls = item.get("tls")
        ctx = _tls_context(tls["cert"], tls["key"], sni) if tls else None
        server = await loop.create_server(lambda b=behaviour: Responder(b, sni), host,
                                          int(item.get("port", 0)), ssl=ctx, backlog=4096,
                                          reuse_address=True)
        servers.append(server)
        ready[item["name"]] = [host, server.sockets[0].getsockname()[1]]
    print(json.dumps({"ready": ready}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m failover.fleet SPEC.json` (or `-` for stdin)."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        raise SystemExit("usage: python -m failover.fleet SPEC.json")
    text = sys.stdin.read() if args[0] == "-" else Path(args[0]).read_text()
    run_loop(serve(json.loads(text)))



if __name__ == "__main__":
    main()
