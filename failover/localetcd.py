"""A private etcd cluster on loopback, for `failover demo --fleet`, tests and benchmarks.

Members start one after another (each once the previous one serves `/members` on its
peer port), with a 25 ms heartbeat and a 250 ms election timeout, data in their own
directory; the cluster is ready when `/health` says so on every member. Members are
stopped by their PID with SIGKILL: a member without quorum may ignore SIGTERM.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from failover.localdns import free_port


def etcd_binary() -> str | None:
    """The path of `etcd`, or None when it is not installed."""
    return shutil.which("etcd")


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"


@dataclass
class LocalEtcd:
    """A running private etcd cluster; `LocalEtcd.start(directory, members=3)`, `stop()`."""

    directory: Path
    members: list[Member]
    token: str = "failover-local"

    @classmethod
    def start(cls, directory: Path, members: int = 3, timeout: float = 30.0,
              host: str = "127.0.0.1") -> LocalEtcd:
        if etcd_binary() is None:
            raise RuntimeError("etcd is not installed (Debian: apt-get install etcd-server)")
        directory.mkdir(parents=True, exist_ok=True)
        ports: set[int] = set()
        specs = []
        for i in range(members):
            client = peer = 0
            while client in ports or client == 0:
                client = free_port(host)
            ports.add(client)
            while peer in ports or peer == 0:
                peer = free_port(host)
            ports.add(peer)
            specs.append(Member(f"m{i}", client, peer, host))
        cluster = cls(directory, specs)
        try:
            for m in specs:
                cluster.start_member(m, timeout)
            cluster.wait_healthy(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start_member(self, member: Member, timeout: float = 30.0) -> None:
        """Start one member (again, on its ports and data, after `kill`)."""
        binary = etcd_binary()
        assert binary is not None
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        data = self.directory / member.name
        log = (self.directory / f"{member.name}.log").open("ab")
        member.process = subprocess.Popen(
            [binary, "--name", member.name, "--data-dir", str(data),
             "--listen-client-urls", member.client_url,
             "--advertise-client-urls", member.client_url,
             "--listen-peer-urls", member.peer_url,
             "--initial-advertise-peer-urls", member.peer_url,
             "--initial-cluster", initial, "--initial-cluster-token", self.token,
             "--initial-cluster-state", "new",
             "--heartbeat-interval", "25", "--election-timeout", "250",
             "--logger", "zap", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if member.process.poll() is not None:
                raise RuntimeError(f"etcd {member.name} exited with "
                                   f"{member.process.returncode}:\n{self.log(member)}")
            try:
                if httpx.get(f"{member.peer_url}/members", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"etcd {member.name} did not start within {timeout:g} s:\n"
                           + self.log(member))

    def wait_healthy(self, timeout: float = 30.0, members: list[Member] | None = None) -> None:
        """Wait until `/health` is true on every (given) member."""
        deadline = time.monotonic() + timeout
        pending = list(members or self.members)
        while pending and time.monotonic() < deadline:
            m = pending[0]
            try:
                r = httpx.get(f"{m.client_url}/health", timeout=0.5)
                if r.status_code == 200 and r.json().get("health") == "true":
                    pending.pop(0)
                    continue
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.02)
        if pending:
            raise RuntimeError(f"etcd {pending[0].name} not healthy within {timeout:g} s:\n"
                               + self.log(pending[0]))

    def kill(self, member: Member) -> None:
        """SIGKILL one member (by its PID)."""
        if member.process is not None and member.process.poll() is None:
            member.process.kill()
            member.process.wait(timeout=10)

    def stop(self) -> None:
        """Kill every member and delete their data (each pre-allocates 64 MB of WAL)."""
        for m in self.members:
            self.kill(m)
        for m in self.members:
            shutil.rmtree(self.directory / m.name, ignore_errors=True)

    def log(self, member: Member) -> str:
        path = self.directory / f"{member.name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
