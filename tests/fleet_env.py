"""A loopback fleet under test: a private 3-member etcd, named, two regions of loopback
endpoints and N controller processes, each with its own vantage, API port and config
(the same config but for those), all stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failover.localdns import LocalNamed, free_port
from failover.localetcd import LocalEtcd
from tests.builders import ROOT
from tests.service_env import CHECKS_AND_REGIONS, EAST, WEST, Env, api_status

FLEET_CONFIG = """
zone: example.test.
provider:
  type: rfc2136
  server: {dns_host}
  port: {dns_port}
  tsig: {{name: failover-key, secret_file: ./tsig.secret}}
controller:
  listen: {listen_host}:{api_port}
  cluster:
    etcd: {{endpoints: [{endpoints}], prefix: /failover/test}}
    vantage: {vantage}
    vantages: [{vantages}]
    lease_ttl: {ttl}
""" + CHECKS_AND_REGIONS + """records:
  - name: api.example.test.
    type: A
    ttl: 30
    policy: failover
    order: [us-east-1, eu-west-1]
"""


@dataclass
class Instance:
    vantage: str
    api_port: int
    config: Path
    process: subprocess.Popen[str] | None = None
    host: str = "127.0.0.1"  # where its API listens

    def status(self) -> dict[str, Any]:
        return api_status(self.api_port, self.host)

    def cluster(self) -> dict[str, Any]:
        return dict(self.status().get("cluster") or {})

    def leads(self) -> bool:
        return self.cluster().get("role") == "leader"


@dataclass
class Fleet:
    dir: Path
    named: LocalNamed
    etcd: LocalEtcd
    env: Env  # the regions' endpoints and DNS helpers
    ttl: int = 3
    instances: dict[str, Instance] = field(default_factory=dict)
    east: str = EAST  # the regions' endpoint addresses
    west: str = WEST
    # controller.cluster.vantages: the instances' names and the extra views tests publish
    vantages: tuple[str, ...] = ("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1",
                                 "lonely", "laptop")

    def add(self, vantage: str, host: str = "127.0.0.1") -> Instance:
        d = self.dir / vantage
        d.mkdir(exist_ok=True)
        (d / "tsig.secret").write_text(self.named.tsig_secret)
        port = free_port()
        config = d / "failover.yaml"
        config.write_text(FLEET_CONFIG.format(
            dns_host=self.named.host, dns_port=self.named.port, api_port=port,
            listen_host=host, ttl=self.ttl, vantage=vantage, vantages=", ".join(self.vantages),
            endpoints=", ".join(self.etcd.endpoints), http_port=self.env.http_port,
            east=self.east, west=self.west))
        inst = Instance(vantage, port, config, host=host)
        self.instances[vantage] = inst
        return inst

    def start(self, vantage: str, prefix: list[str] | None = None) -> Instance:
        """Start an instance (`prefix`: e.g. `ip netns exec NS`, to run it on a lab host)."""
        inst = self.instances[vantage]
        argv = [*(prefix or []), sys.executable, "-m", "failover", "run", "--config",
                str(inst.config)]
        inst.process = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, text=True,
            stderr=(inst.config.parent / "controller.log").open("a"))
        return inst

    def kill(self, vantage: str, sig: int = signal.SIGKILL) -> None:
        inst = self.instances[vantage]
        if inst.process is not None and inst.process.poll() is None:
            os.kill(inst.process.pid, sig)
            try:
                inst.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(inst.process.pid, signal.SIGKILL)
                inst.process.wait(timeout=10)
        inst.process = None

    def leaders(self) -> list[str]:
        return [v for v, i in self.instances.items() if i.process is not None and i.leads()]

    def log(self, vantage: str) -> str:
        path = self.instances[vantage].config.parent / "controller.log"
        return path.read_text() if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {v}\n{self.log(v)[-3000:]}" for v in self.instances)

    def stop(self) -> None:
        for vantage in list(self.instances):
            self.kill(vantage, signal.SIGTERM)
        self.env.stop_all(signal.SIGKILL)
