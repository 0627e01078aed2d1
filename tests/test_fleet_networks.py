"""A fleet answering client networks by latency: each vantage measures the endpoints from
where it is (here: its own source address, to which the endpoints answer slower or
faster), and the leader answers each network by the latencies of that network's vantage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.localdns import LocalNamed, free_port, named_binary
from failover.localetcd import LocalEtcd, etcd_binary
from tests.builders import ROOT
from tests.service_env import (
    EAST,
    EUROPE_CLIENT,
    NETWORK_VIEWS,
    OTHER_CLIENT,
    WEST,
    Env,
    a_values,
    api_status,
    wait_for,
    write_view_keys,
)

SOURCES = {"us-east-1": "127.0.0.11", "eu-west-1": "127.0.0.12"}  # each vantage probes from
NAME = "app.example.test."

CONFIG = """
zone: example.test.
provider:
  type: rfc2136
  server: 127.0.0.1
  port: {dns_port}
  views:
    europe: {{tsig: {{name: view-europe, secret_file: ./europe.key}}}}
    default: {{tsig: {{name: view-default, secret_file: ./default.key}}}}
networks:
  europe: {{cidrs: [127.0.0.128/25], vantage: eu-west-1}}
  default: {{vantage: us-east-1}}
controller:
  listen: 127.0.0.1:{api_port}
  probe_source: {source}
  cluster:
    etcd: {{endpoints: [{endpoints}], prefix: /failover/networks}}
    vantage: {vantage}
    vantages: [us-east-1, eu-west-1]
    lease_ttl: 3
checks:
  web: {{type: HTTP, port: {http_port}, resource_path: /health, request_interval: 1,
         failure_threshold: 2, response_timeout: 1, measure_latency: true}}
regions:
  us-east-1: {{endpoints: [{{address: {east}, check: web}}]}}
  eu-west-1: {{endpoints: [{{address: {west}, check: web}}]}}
records:
  - name: app.example.test.
    type: A
    ttl: 5
    policy: latency
    latency_min_hold: 0
"""


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[LocalNamed, LocalEtcd, Env]]:
    for binary, package in ((named_binary(), "bind9"), (etcd_binary(), "etcd-server")):
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail(f"{package} is not installed: make test installs it")
            pytest.skip(f"{package} is not installed")
    named = LocalNamed.start(tmp_path / "named", views=NETWORK_VIEWS)
    etcd = LocalEtcd.start(tmp_path / "etcd")
    env = Env(dir=tmp_path, named=named, http_port=free_port(EAST), api_port=free_port())
    try:
        # us-east-1's endpoint answers eu-west-1's prober 80 ms late, and the other way
        env.start_region(EAST, f"slow-from:{SOURCES['eu-west-1']}=0.08")
        env.start_region(WEST, f"slow-from:{SOURCES['us-east-1']}=0.08")
        yield named, etcd, env
    finally:
        env.stop_all(signal.SIGKILL)
        etcd.stop()
        named.stop()


def test_each_network_is_answered_by_the_region_fastest_from_its_vantage(
        tmp_path: Path, parts: tuple[LocalNamed, LocalEtcd, Env]) -> None:
    named, etcd, env = parts
    procs: dict[str, subprocess.Popen[str]] = {}
    ports = {}
    try:
        for vantage, source in SOURCES.items():
            d = tmp_path / vantage
            d.mkdir()
            write_view_keys(named, d)
            ports[vantage] = free_port()
            (d / "failover.yaml").write_text(CONFIG.format(
                dns_port=named.port, api_port=ports[vantage], source=source, vantage=vantage,
                endpoints=", ".join(etcd.endpoints), http_port=env.http_port,
                east=EAST, west=WEST))
            procs[vantage] = subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "--config", str(d / "failover.yaml")],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(d / "log").open("a"), text=True)

        def logs() -> str:
            return "\n".join(f"--- {v}\n{(tmp_path / v / 'log').read_text()[-3000:]}"
                             for v in SOURCES)

        def seen(source: str) -> set[str]:
            return a_values(named.port, NAME, source=source) or set()

        assert wait_for(lambda: seen(EUROPE_CLIENT) == {WEST} and seen(OTHER_CLIENT) == {EAST},
                        90), logs()
        # the leader says whose latency answered each network
        leader = next(v for v in SOURCES
                      if (api_status(ports[v]).get("cluster") or {}).get("role") == "leader")
        records = {r["network"]: r for r in api_status(ports[leader])["records"]}
        assert "latency from eu-west-1" in records["europe"]["reason"], records
        assert "latency from us-east-1" in records["default"]["reason"], records
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
