"""Partitions made real: the fleet's instances, its regions' endpoints, etcd and named on
hosts of a private network (namespaces and veth links, tests/netlab.py). A link taken
down cuts a leader off; a blackhole route cuts one vantage from one region."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest

from failover.dns.base import fence_epoch, fence_name
from failover.localdns import LocalNamed, free_port, named_binary
from failover.localetcd import LocalEtcd, etcd_binary
from tests.builders import ROOT
from tests.fleet_env import Fleet
from tests.netlab import Lab, lab_available
from tests.service_env import Env, wait_for

VANTAGES = {"a": 21, "b": 22, "c": 23}


@dataclass
class Net:
    lab: Lab
    fleet: Fleet
    named: LocalNamed
    regions: dict[str, subprocess.Popen[str]]
    east: str
    west: str
    port: int

    def answer(self) -> set[str]:
        try:
            r = dns.query.udp(dns.message.make_query("api.example.test.", "A"), self.named.host,
                              port=self.named.port, timeout=1)
        except Exception:
            return set()
        return {rd.to_text() for rrset in r.answer for rd in rrset}

    def fence(self) -> int | None:
        r = dns.query.udp(dns.message.make_query(fence_name("example.test."), "TXT"),
                          self.named.host, port=self.named.port, timeout=1)
        return fence_epoch([rd.to_text() for rrset in r.answer for rd in rrset])

    def start_region(self, name: str, host: str) -> None:
        proc = subprocess.Popen([*self.lab.exec(name), sys.executable, "-m", "failover.fleet",
                                 "-"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps([{"name": name, "host": host, "port": self.port}]))
        proc.stdin.close()
        assert proc.stdout.readline(), f"the endpoint on {name} did not start"
        self.regions[name] = proc

    def stop_region(self, name: str) -> None:
        proc = self.regions.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def leaders(self) -> list[str]:
        return self.fleet.leaders()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    why = lab_available() or (None if named_binary() and etcd_binary() else
                              "named or etcd is not installed")
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the partition tests must run in CI: {why}")
        pytest.skip(why)
    lab = Lab().start()
    named = etcd = None
    regions: dict[str, subprocess.Popen[str]] = {}
    fleet = None
    try:
        here = lab.root(1)
        east, west = lab.host("east", 11), lab.host("west", 12)
        # named at an address of its own: a route can cut it alone, etcd still reached
        named = LocalNamed.start(tmp_path / "named", host=lab.alias(2))
        etcd = LocalEtcd.start(tmp_path / "etcd", host=here)
        port = free_port()
        env = Env(dir=tmp_path, named=named, http_port=port, api_port=free_port())
        fleet = Fleet(tmp_path, named, etcd, env, east=east, west=west,
                      vantages=tuple(VANTAGES))
        n = Net(lab, fleet, named, regions, east, west, port)
        n.start_region("east", east)
        n.start_region("west", west)
        for vantage, last in VANTAGES.items():
            fleet.add(vantage, host=lab.host(vantage, last))
            fleet.start(vantage, prefix=lab.exec(vantage))
        assert wait_for(lambda: len(fleet.leaders()) == 1, 60), fleet.logs()
        assert wait_for(lambda: n.answer() == {east}, 60), fleet.logs()
        assert wait_for(lambda: all(sum(v.get("ready", False) for v in i.cluster().get(
            "vantages", [])) == 3 for i in fleet.instances.values()), 60), fleet.logs()
        yield n
    finally:
        if fleet is not None:
            for vantage in list(fleet.instances):
                fleet.kill(vantage, signal.SIGKILL)
        for proc in regions.values():
            proc.kill()
            proc.wait(timeout=10)
        if etcd is not None:
            etcd.stop()
        if named is not None:
            named.stop()
        lab.stop()


def test_a_leader_cut_from_etcd_stops_writing_and_the_new_leader_writes(net: Net) -> None:
    fleet = net.fleet
    old = net.leaders()[0]
    epoch = net.fence()
    net.lab.cut(old)  # its link down: etcd, named and the endpoints gone for it
    try:
        assert wait_for(lambda: len([v for v in net.leaders() if v != old]) == 1, 60), \
            fleet.logs()
        new = next(v for v in net.leaders() if v != old)
        # the new leader took the fence and writes: us-east-1 fails for everyone
        assert wait_for(lambda: (net.fence() or 0) > (epoch or 0), 30)
        net.stop_region("east")
        assert wait_for(lambda: net.answer() == {net.west}, 60), fleet.logs()
        new_epoch = net.fence()
    finally:
        net.lab.mend(old)
    # back on the network: the old leader finds itself a follower and writes nothing
    assert wait_for(lambda: fleet.instances[old].cluster().get("role") == "follower", 60)
    assert wait_for(lambda: fleet.instances[old].cluster().get("leader", {}).get(
        "vantage") == new, 30)
    assert net.answer() == {net.west} and net.fence() == new_epoch
    log = fleet.log(old)
    # it stopped on its own deadline, before its lease could end in etcd
    assert "lease deadline passed" in log, log[-3000:]


def test_a_leader_cut_from_dns_alone_hands_over_to_one_that_reaches_it(net: Net) -> None:
    fleet = net.fleet
    old = net.leaders()[0]
    epoch = net.fence()
    net.lab.block(old, net.named.host)  # etcd, the regions and the others it still reaches
    net.stop_region("east")
    # it cannot write the failover; the others can: it steps down and one of them writes
    assert wait_for(lambda: net.answer() == {net.west}, 60), fleet.logs()
    assert (net.fence() or 0) > (epoch or 0)
    leaders = net.leaders()
    assert len(leaders) == 1 and leaders[0] != old, leaders
    log = fleet.log(old)
    assert "event=leader_cut_from_dns" in log and "it steps down" in log, log[-3000:]
    history = subprocess.run([sys.executable, "-m", "failover", "history", "--config",
                              str(fleet.instances[leaders[0]].config)], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=False).stdout
    assert f"{old} cannot reach DNS for" in history, history


def test_one_vantage_cut_from_a_region_no_failover_then_every_vantage_failover(
        net: Net) -> None:
    fleet = net.fleet
    leader = net.leaders()[0]
    cut = next(v for v in VANTAGES if v != leader)
    net.lab.block(cut, net.east)  # this vantage alone cannot reach us-east-1's endpoint
    east_id = f"us-east-1/{net.east}"

    def named_disagreeing() -> bool:
        c = fleet.instances[leader].cluster()
        return any(v["vantage"] == cut and v["disagrees"] == [east_id]
                   for v in c.get("vantages", []))

    assert wait_for(named_disagreeing, 60), fleet.instances[leader].cluster()
    assert net.answer() == {net.east}  # outvoted: no failover
    region = fleet.instances[leader].status()["regions"]["us-east-1"]
    assert region["healthy"] and "2 of 3 vantages healthy" in region["endpoints"][0]["reason"]
    # cut us-east-1 from every vantage: failover
    net.stop_region("east")
    assert wait_for(lambda: net.answer() == {net.west}, 60), fleet.logs()
