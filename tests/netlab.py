"""Regions and partitions as network namespaces: a private switch (a bridge in a
namespace of its own) and hosts plugged into it by veth links, on a 10.213.N.0/24 subnet
that exists only here. Taking a host's link down partitions it from everyone; a
blackhole route in one host cuts it from one address only. Every namespace and link is
deleted by `stop()`. Needs root (CI runs as root; elsewhere the tests skip)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field


def lab_available() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Lab:
    tag: str = field(default_factory=lambda: f"{random.randrange(16**4):04x}")
    subnet: int = field(default_factory=lambda: random.randrange(1, 250))
    namespaces: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # host -> its switch-side end
    root_links: list[str] = field(default_factory=list)
    _n: int = 0

    @property
    def hub(self) -> str:
        return f"fo{self.tag}hub"

    def address(self, last: int) -> str:
        return f"10.213.{self.subnet}.{last}"

    def start(self) -> Lab:
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        return self

    def ns(self, name: str) -> str:
        return f"fo{self.tag}{name}"

    def host(self, name: str, last: int) -> str:
        """A host of its own (a namespace) at 10.213.N.`last`; returns its address."""
        ns = self.ns(name)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        self._plug(name, ns, last)
        return self.address(last)

    def root(self, last: int) -> str:
        """This machine's own namespace on the switch (named, etcd and the test run
        there, reachable at this address)."""
        self._plug("root", None, last)
        return self.address(last)

    def alias(self, last: int) -> str:
        """One more address of this machine's own namespace on the switch (a second
        server there, which a blackhole route can cut alone)."""
        _ip("addr", "add", f"{self.address(last)}/24", "dev", self.root_links[0])
        return self.address(last)

    def _plug(self, name: str, ns: str | None, last: int) -> None:
        self._n += 1
        hub_end, host_end = f"f{self.tag}{self._n}a", f"f{self.tag}{self._n}b"
        _ip("link", "add", hub_end, "type", "veth", "peer", "name", host_end)
        _ip("link", "set", hub_end, "netns", self.hub)
        _ip("-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
        where = ["-n", ns] if ns else []
        if ns:
            _ip("link", "set", host_end, "netns", ns)
        else:
            self.root_links.append(host_end)
        _ip(*where, "addr", "add", f"{self.address(last)}/24", "dev", host_end)
        _ip(*where, "link", "set", host_end, "up")
        self.links[name] = hub_end

    def cut(self, name: str) -> None:
        """Take a host's link down: it reaches nobody, nobody reaches it."""
        _ip("-n", self.hub, "link", "set", self.links[name], "down")

    def mend(self, name: str) -> None:
        _ip("-n", self.hub, "link", "set", self.links[name], "up")

    def block(self, name: str, address: str) -> None:
        """Host `name` can no longer reach `address` (everything else it still can)."""
        _ip("-n", self.ns(name), "route", "add", "blackhole", f"{address}/32")

    def exec(self, name: str) -> list[str]:
        """The argv prefix that runs a command on host `name`."""
        return ["ip", "netns", "exec", self.ns(name)]

    def stop(self) -> None:
        for link in self.root_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30,
                           check=False)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)
