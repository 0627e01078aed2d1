"""Test helper: start the loopback fleet in its own process and stop it by its PID."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from failover import children
from tests.builders import ROOT


@contextmanager
def fleet(spec: list[dict[str, Any]]) -> Iterator[dict[str, tuple[str, int]]]:
    """Serve `spec` (see failover.fleet); yields name -> (host, port)."""
    proc = subprocess.Popen([sys.executable, "-m", "failover.fleet", "-"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        line = proc.stdout.readline()
        assert line, "the fleet exited before it was ready"
        yield {name: (h, p) for name, (h, p) in json.loads(line)["ready"].items()}
    finally:
        children.stop(proc)


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free_on_both() -> int:
    """A port free on 127.0.0.1 and on ::1, for a name that resolves to either."""
    for _ in range(50):
        port = closed_port("127.0.0.1")
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on both loopback addresses")


def self_signed(directory: Path) -> dict[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1 made with openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed for the TLS tests (.ci/run installs it)"
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,DNS:api.example.test,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return {"cert": str(cert), "key": str(key)}
