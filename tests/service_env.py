"""A controller service under test: named, two regions of loopback endpoints, the
controller as a process; used by the service tests, the fault tests and bench/failover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from failover.localdns import LocalNamed
from tests.builders import ROOT

EAST, WEST = "127.0.1.1", "127.0.2.1"

# the checks and the two regions every service test uses (a format template)
CHECKS_AND_REGIONS = """checks:
  web: {{type: HTTP, port: {http_port}, resource_path: /health, request_interval: 1,
         failure_threshold: 2, response_timeout: 0.5}}
regions:
  us-east-1: {{endpoints: [{{address: {east}, check: web}}]}}
  eu-west-1: {{endpoints: [{{address: {west}, check: web}}]}}
"""

CONFIG = """
zone: example.test.
provider:
  type: bind
  server: 127.0.0.1
  port: {dns_port}
  tsig: {{name: failover-key, secret_file: ./tsig.secret}}
controller:
  state: ./failover.db
  listen: 127.0.0.1:{api_port}
""" + CHECKS_AND_REGIONS + """records:
  - name: api.example.test.
    type: A
    ttl: 30
    policy: failover
    order: [us-east-1, eu-west-1]
    failback_delay: {failback}
"""


@dataclass
class Env:
    dir: Path
    named: LocalNamed
    http_port: int
    api_port: int
    regions: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    controller: subprocess.Popen[str] | None = None

    @property
    def config(self) -> Path:
        return self.dir / "failover.yaml"

    def write_config(self, failback: float = 0) -> None:
        self.config.write_text(CONFIG.format(dns_port=self.named.port, api_port=self.api_port,
                                             http_port=self.http_port, east=EAST, west=WEST,
                                             failback=failback))

    def add_token(self, token: str = "s3cret-token-for-tests") -> None:
        """Give the API a bearer token (from the file ./token)."""
        (self.dir / "token").write_text(token + "\n")
        self.config.write_text(self.config.read_text().replace(
            f"listen: 127.0.0.1:{self.api_port}",
            f"listen: 127.0.0.1:{self.api_port}\n  token_file: ./token"))

    def start_region(self, host: str, behaviour: str = "ok") -> None:
        self.stop_region(host)
        proc = subprocess.Popen([sys.executable, "-m", "failover.fleet", "-"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([{"name": host, "host": host, "port": self.http_port,
                                      "behaviour": behaviour}]))
        proc.stdin.close()
        assert proc.stdout.readline(), "endpoint did not start"
        self.regions[host] = proc

    def stop_region(self, host: str) -> None:
        proc = self.regions.pop(host, None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def start_controller(self, *args: str, env: dict[str, str] | None = None
                         ) -> subprocess.Popen[str]:
        self.controller = subprocess.Popen(
            [sys.executable, "-m", "failover", "run", "--config", str(self.config), *args],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(self.dir / "controller.log").open("a"),
            text=True, env={**os.environ, **(env or {})})
        return self.controller

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Stop the controller (if running) and every region's endpoints, by PID."""
        if self.controller is not None:
            self.stop_controller(sig)
        for host in list(self.regions):
            self.stop_region(host)

    def stop_controller(self, sig: int = signal.SIGTERM) -> int:
        proc, self.controller = self.controller, None
        assert proc is not None
        if proc.poll() is None:
            os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=10)

    def answer(self, name: str = "api.example.test.") -> set[str]:
        """The A values named serves for `name` (empty: the name has none). Raises
        DnsQueryFailed when named does not answer: a lost query is not an empty answer."""
        return a_values(self.named.port, name) or set()

    def serial(self) -> int:
        r = dns.query.udp(dns.message.make_query("example.test.", "SOA"), "127.0.0.1",
                          port=self.named.port, timeout=1)
        return int(r.answer[0][0].serial)  # type: ignore[attr-defined]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "failover", *args, "--config",
                               str(self.config)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False)

    def status(self) -> dict[str, Any]:
        """The running controller's /status; {} while it does not answer."""
        return api_status(self.api_port)

    def readyz(self) -> tuple[int, str]:
        """The running controller's /readyz: its code and text; (0, "") while it does
        not answer."""
        return http_get(self.api_port, "/readyz")

    def record(self, name: str = "api.example.test.") -> dict[str, Any]:
        """One record's entry in /status (decision, desired, served); {} when unknown."""
        return next((r for r in self.status().get("records", []) if r["name"] == name), {})

    def log(self) -> str:
        path = self.dir / "controller.log"
        return path.read_text() if path.exists() else ""


def http_get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, str]:
    """A controller's answer to GET `path`: its code and text; (0, "") while it does not
    answer."""
    import urllib.error

    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def api_status(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """A controller's /status on `host`:`port`; {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=2) as r:
            return dict(json.loads(r.read()))
    except (OSError, ValueError):
        return {}


class DnsQueryFailed(AssertionError):
    """named gave no usable answer to a test's query, after retries."""


def a_values(port: int, name: str, host: str = "127.0.0.1",
             attempts: int = 5, source: str | None = None) -> set[str] | None:
    """The A values `name` has at the named on `port`: None when the name does not exist
    (NXDOMAIN), an empty set when it exists without A records. `source`: the client
    address to ask from (a server with views answers by it).

    A query lost or timed out (UDP on a busy machine) is asked again, a failing server
    (SERVFAIL, REFUSED) too; after `attempts` it raises DnsQueryFailed, so that no test
    reads "named did not answer" as "the name has no answer".
    """
    why = ""
    for _ in range(attempts):
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), host, port=port, timeout=2,
                              source=source)
        except (dns.exception.Timeout, OSError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            continue
        if r.rcode() == dns.rcode.NXDOMAIN:
            return None
        if r.rcode() != dns.rcode.NOERROR:
            why = dns.rcode.to_text(r.rcode())
            continue
        return {rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A
                for rd in rrset}
    raise DnsQueryFailed(f"{name} A at {host}:{port}: no answer after {attempts} attempts "
                         f"({why})")


def wait_for(what: Callable[[], bool], timeout: float = 20.0, step: float = 0.1) -> bool:
    """Poll until `what()` is true or `timeout` passes (bounded in time and count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(step)
    return what()


def served_east(env: Env) -> Callable[[], bool]:
    return lambda: env.answer() == {EAST}


def only_east_healthy(env: Env) -> None:
    """The controller running with eu-west-1 known unhealthy: us-east-1 is the last one."""
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(WEST)
    assert wait_for(lambda: "eu-west-1/127.0.2.1 is unhealthy" in env.cli("history").stdout,
                    timeout=10)


def overrides_left(env: Env) -> list[str]:
    """The overrides in the environment's state, as "kind target"."""
    from failover.config import load_config
    from failover.state import open_state

    state = open_state(load_config(env.config))
    try:
        return [f"{o.kind} {o.target}" for o in state.overrides()]
    finally:
        state.close()


def shifted_clock(shift: Path) -> dict[str, str]:
    """The environment of a controller whose wall clock is shifted by the seconds written
    in `shift` (tests/wallclock/sitecustomize.py), as an NTP step shifts it."""
    return {"PYTHONPATH": str(Path(__file__).parent / "wallclock"),
            "FAILOVER_TEST_WALL_SHIFT": str(shift)}


NETWORK_VIEWS = {"europe": ["127.0.0.128/25"], "default": []}  # the tests' two networks
EUROPE_CLIENT, OTHER_CLIENT = "127.0.0.129", "127.0.0.1"  # a client of each


def viewed_named(directory: Path) -> LocalNamed:
    """named with the example zone in two views (europe, by 127.0.0.128/25, and default);
    skips without BIND, and fails in CI, where a missing component is a failure."""
    import pytest

    from failover.localdns import named_binary

    if named_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("named is not installed: make test installs bind9")
        pytest.skip("named is not installed (apt-get install bind9 bind9-utils)")
    return LocalNamed.start(directory, views=NETWORK_VIEWS)


def write_view_keys(named: LocalNamed, directory: Path) -> None:
    """Each view's secret where the configs name it: ./<view>.key."""
    for view, secret in named.view_keys.items():
        (directory / f"{view}.key").write_text(secret + "\n")
