"""The controller's HTTP endpoint on loopback: health, readiness, status, metrics, overrides.

GET /healthz (the loop is alive), /readyz (first probe round done), /status (JSON),
/metrics (Prometheus). POST /v1/drain, /v1/restore, /v1/pin, /v1/unpin change overrides
and need `Authorization: Bearer <token>` (controller.token_env / token_file); without a
configured token they are refused.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError

if TYPE_CHECKING:
    from failover.controller import Controller

log = logging.getLogger(__name__)
STALE_AFTER = 30.0  # /healthz fails when the loop has not published for this long


class Published:
    """What the loop thread publishes for the HTTP thread: swapped whole, never mutated."""

    def __init__(self) -> None:
        self.status: bytes = b"{}"
        self.ready = False
        self.at = time.monotonic()


class ApiServer:
    """A small threaded HTTP server bound to the configured loopback address."""

    def __init__(self, host: str, port: int, controller: Controller, published: Published,
                 token: str | None, change: Callable[[str, dict[str, Any]], str]) -> None:
        handler = _handler(controller, published, token, change)
        try:
            self.httpd = ThreadingHTTPServer((host.strip("[]"), port), handler)
        except OSError as exc:
            raise FailoverError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(controller: Controller, published: Published, token: str | None,
             change: Callable[[str, dict[str, Any]], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "failover"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("event=http %s", fmt % args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            # the controller's steady clock now: a drill on this machine maps the times in
            # the history onto its own clock with it, even after the wall clock stepped
            self.send_header("X-Failover-Clock", f"{controller.clock():.6f}")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: Any) -> None:
            self._send(code, json.dumps(data).encode() + b"\n")

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/healthz":
                fresh = time.monotonic() - published.at < STALE_AFTER
                self._send(200 if fresh else 503, b"ok\n" if fresh else b"stalled\n", "text/plain")
            elif path == "/readyz":
                self._send(200 if published.ready else 503,
                           b"ready\n" if published.ready else b"waiting for the first probe round\n",
                           "text/plain")
            elif path == "/status":
                self._send(200, published.status)
            elif path == "/metrics":
                self._send(200, controller.metrics.render(),
                           "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._json(404, {"error": f"no such path {path}"})

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            action = path.removeprefix("/v1/")
            if action not in ("drain", "restore", "pin", "unpin"):
                self._json(404, {"error": f"no such path {path}"})
                return
            if token is None:
                self._json(403, {"error": "no API token configured (controller.token_env or "
                                          "token_file): changes go through the CLI"})
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self._json(401, {"error": "missing or wrong bearer token"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                self._json(200, {"ok": True, "message": change(action, body)})
            except (ValueError, FailoverError) as exc:
                self._json(400, {"error": str(exc)})

    return Handler
