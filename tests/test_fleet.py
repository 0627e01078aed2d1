"""A fleet of controllers on a private 3-member etcd, with real named and real endpoints:
one leader writes, every instance probes and votes, the leader can die or be paused,
etcd can lose quorum, and the CLI works from another machine's config."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from failover.cluster.etcd import Etcd
from failover.dns.base import fence_epoch, fence_name
from failover.localdns import LocalNamed, free_port
from failover.localetcd import LocalEtcd, etcd_binary
from tests.builders import ROOT
from tests.fleet_env import Fleet
from tests.service_env import EAST, WEST, Env, api_status, wait_for
from tests.tcp_hold import HeldRelay
from tests.test_hardening import _alive


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[LocalEtcd]:
    """A private 3-member etcd on loopback; in CI a missing etcd fails, not skips."""
    if etcd_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("etcd is not installed: make test installs etcd-server")
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    cluster = LocalEtcd.start(tmp_path / "etcd")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fleet(tmp_path: Path, named: LocalNamed, etcd: LocalEtcd) -> Iterator[Fleet]:
    env = Env(dir=tmp_path, named=named, http_port=free_port(EAST), api_port=free_port())
    f = Fleet(tmp_path, named, etcd, env)
    try:
        env.start_region(EAST)
        env.start_region(WEST)
        yield f
    finally:
        f.stop()


def fence_held(named: LocalNamed) -> int | None:
    r = dns.query.udp(dns.message.make_query(fence_name("example.test."), "TXT"), "127.0.0.1",
                      port=named.port, timeout=1)
    return fence_epoch([rd.to_text() for rrset in r.answer for rd in rrset])


def started(fleet: Fleet, *vantages: str) -> str:
    """Start instances; wait for one leader, the answer written and every view counted;
    returns the leader's vantage."""
    for v in vantages:
        fleet.add(v)
        fleet.start(v)
    assert wait_for(lambda: len(fleet.leaders()) == 1, 60), fleet.logs()
    assert wait_for(lambda: fleet.env.answer() == {EAST}, 30), fleet.logs()
    assert wait_for(lambda: all(
        sum(x.get("ready", False) for x in fleet.instances[v].cluster().get("vantages", []))
        == len(vantages) for v in vantages), 30), fleet.logs()
    return fleet.leaders()[0]


class Watcher:
    """Queries the answer every 50 ms on a thread and keeps every distinct one seen."""

    def __init__(self, env: Env) -> None:
        self.env, self.seen = env, set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in range(6000):  # bounded: 5 minutes at most
            if self.stop.is_set():
                return
            self.seen.add(frozenset(self.env.answer()))
            time.sleep(0.05)

    def done(self) -> set[frozenset[str]]:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.seen


def test_sigkill_the_leader_another_takes_the_fence_and_the_answer_stays_right(
        fleet: Fleet) -> None:
    leader = started(fleet, "us-east-1", "eu-west-1", "ap-south-1")
    epoch = fence_held(fleet.named)
    assert epoch is not None
    watcher = Watcher(fleet.env)
    fleet.kill(leader, signal.SIGKILL)
    # the new leader's first write is the fence, with a higher epoch
    assert wait_for(lambda: (fence_held(fleet.named) or 0) > epoch, 30), fleet.logs()
    assert wait_for(lambda: len(fleet.leaders()) == 1, 30)
    new = fleet.leaders()[0]
    assert new != leader
    # and it writes: a region failure is failed over by the new leader
    fleet.env.stop_region(EAST)
    assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
    # the answer was never empty nor anything else throughout
    assert watcher.done() <= {frozenset({EAST}), frozenset({WEST})}
    status = fleet.instances[new].cluster()
    assert status["leader"]["vantage"] == new and status["epoch"] == fence_held(fleet.named)
    gone = [v for v in status["vantages"] if v["vantage"] == leader]
    assert wait_for(lambda: any(v["vantage"] == leader and not v["live"]
                                for v in fleet.instances[new].cluster()["vantages"]), 15), gone


def test_a_paused_leader_stops_writing_and_comes_back_a_follower(fleet: Fleet) -> None:
    # the first leader reaches etcd through relays the test controls, named directly, and
    # reads DNS back every second; once resumed, its lease renewals are held (the rest of
    # its etcd traffic flows) and it finds api answered otherwise than it decided: a write
    # it would make at once if it still took itself for the leader
    relays = [HeldRelay(_host_port(url)) for url in fleet.etcd.endpoints]
    try:
        leader, others = "us-east-1", ("eu-west-1", "ap-south-1")
        _refreshing(fleet.add(leader).config, relays)
        fleet.start(leader)
        assert wait_for(lambda: fleet.leaders() == [leader], 60), fleet.logs()
        for v in others:
            fleet.add(v)
            fleet.start(v)
        assert wait_for(lambda: all(
            sum(x.get("ready", False) for x in fleet.instances[v].cluster().get("vantages", []))
            == 3 for v in (leader, *others)), 30), fleet.logs()
        assert fleet.leaders() == [leader] and fleet.env.answer() == {EAST}
        old = fence_held(fleet.named)
        proc = fleet.instances[leader].process
        assert proc is not None and old is not None
        os.kill(proc.pid, signal.SIGSTOP)  # cut off: no renewal reaches etcd
        for relay in relays:
            relay.hold(only=b"/v3/lease/keepalive")
        try:
            assert wait_for(lambda: len([v for v in fleet.leaders() if v != leader]) == 1, 30)
            # the new leader's first write is the fence, with a higher epoch
            assert wait_for(lambda: (fence_held(fleet.named) or 0) > old, 30), fleet.logs()
            epoch = fence_held(fleet.named)
            _answer_otherwise(fleet.named, WEST)  # not what the old leader decided
            logged = len(fleet.named.log())
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        # past its deadline it writes nothing, though it reads api answered from eu-west-1
        # while it decided us-east-1; it steps down when a renewal fails
        assert wait_for(lambda: "event=leader_stepped_down" in fleet.log(leader), 30), \
            fleet.log(leader)
        assert wait_for(lambda: "event=following" in fleet.log(leader), 30), fleet.log(leader)
        for relay in relays:
            relay.release()
        assert wait_for(lambda: fleet.instances[leader].cluster().get("role") == "follower",
                        30)
        assert fleet.env.answer() == {WEST} and fence_held(fleet.named) == epoch
        # and it did not even try: a late write would have reached named and been refused
        # by the fence, and named logs every refused update ("update unsuccessful")
        late = fleet.named.log()[logged:]
        assert "update unsuccessful" not in late and "update failed" not in late, late
    finally:
        for relay in relays:
            relay.close()


def _answer_otherwise(named: LocalNamed, value: str) -> None:
    """Replace api's A record at named (its marker stays), as a writer the controllers
    do not know of would."""
    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    update = dns.update.UpdateMessage("example.test.", keyring=keyring)
    update.replace("api.example.test.", 30, "A", value)
    assert dns.query.tcp(update, "127.0.0.1", port=named.port, timeout=5).rcode() == 0


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.rpartition("//")[2].rpartition(":")
    return host, int(port)


def _refreshing(config: Path, relays: list[HeldRelay] | None = None) -> None:
    """An instance's config that reads DNS back every second, reaching etcd through
    `relays` when given."""
    text = config.read_text().replace("  cluster:\n", "  refresh: 1\n  cluster:\n", 1)
    if relays is not None:
        text = re.sub(r"etcd: \{endpoints: \[[^]]*\]", "etcd: {endpoints: [" + ", ".join(
            f"http://127.0.0.1:{r.port}" for r in relays) + "]", text)
    config.write_text(text)


def publish_view(etcd: LocalEtcd, vantage: str, down: list[str]) -> tuple[Etcd, int]:
    """Be one more vantage of the fleet (as an instance would), seeing `down` down."""
    client = Etcd(etcd.endpoints)
    lease = client.grant(3)
    checks = {f"{eid}|web": [0 if eid in down else 1, time.time(), "connect timeout", None]
              for eid in ("us-east-1/127.0.1.1", "eu-west-1/127.0.2.1")}
    client.put(f"/failover/test/live/vantages/{vantage}", json.dumps({
        "vantage": vantage, "host": "elsewhere", "pid": 1, "ready": True, "at": time.time(),
        "checks": checks}), lease)
    return client, lease


def test_one_vantage_cut_off_from_a_region_is_outvoted_and_named(fleet: Fleet) -> None:
    leader = started(fleet, "us-east-1", "eu-west-1")
    serial = fleet.env.serial()
    client, lease = publish_view(fleet.etcd, "sa-east-1", down=["us-east-1/127.0.1.1"])
    try:
        def named_odd() -> bool:
            c = fleet.instances[leader].cluster()
            return any(v["vantage"] == "sa-east-1" and v["disagrees"] == ["us-east-1/127.0.1.1"]
                       for v in c.get("vantages", []))

        assert wait_for(named_odd, 15), fleet.instances[leader].cluster()
        assert fleet.env.answer() == {EAST} and fleet.env.serial() == serial  # no failover
        # cut from every vantage: the region fails over
        fleet.env.stop_region(EAST)
        assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
    finally:
        client.revoke(lease)
    # the extra vantage's view expires with its lease: status says so
    assert wait_for(lambda: any(v["vantage"] == "sa-east-1" and not v["live"] for v in
                                fleet.instances[leader].cluster()["vantages"]), 15)


def test_a_vantage_that_sees_everything_down_is_the_odd_one(fleet: Fleet) -> None:
    leader = started(fleet, "us-east-1", "eu-west-1")
    client, lease = publish_view(fleet.etcd, "lonely", down=["us-east-1/127.0.1.1",
                                                             "eu-west-1/127.0.2.1"])
    try:
        assert wait_for(lambda: fleet.instances[leader].cluster().get("odd_ones") == ["lonely"],
                        15), fleet.instances[leader].cluster()
        odd = [v for v in fleet.instances[leader].cluster()["vantages"]
               if v["vantage"] == "lonely"]
        assert odd[0]["odd"] and fleet.env.answer() == {EAST}
    finally:
        client.revoke(lease)


def test_two_of_three_etcd_members_down_nobody_writes_then_it_resumes(fleet: Fleet) -> None:
    started(fleet, "us-east-1", "eu-west-1")
    serial = fleet.env.serial()
    a, b = fleet.etcd.members[0], fleet.etcd.members[1]
    fleet.etcd.kill(a)
    fleet.etcd.kill(b)
    try:
        # every instance says why nothing is written; probing goes on
        assert wait_for(lambda: all(any("etcd" in p for p in i.status().get("problems", []))
                                    for i in fleet.instances.values()), 30), fleet.logs()
        assert wait_for(lambda: not fleet.leaders(), 30)
        fleet.env.stop_region(EAST)
        assert wait_for(lambda: all(
            not i.status()["regions"]["us-east-1"]["healthy"]
            for i in fleet.instances.values()), 30)
        assert fleet.env.answer() == {EAST} and fleet.env.serial() == serial  # no writes
    finally:
        fleet.etcd.start_member(a)
        fleet.etcd.start_member(b)
    fleet.etcd.wait_healthy()
    # quorum back: a leader again, and it writes what health says now (and only that)
    assert wait_for(lambda: len(fleet.leaders()) == 1, 30), fleet.logs()
    assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()


def status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`failover status` on an instance's config, as an operator on its machine runs it."""
    return subprocess.run([sys.executable, "-m", "failover", "status", "--config", str(config),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)


def test_status_lists_an_expired_vantage_with_when_it_was_last_seen(fleet: Fleet) -> None:
    leader = started(fleet, "us-east-1", "eu-west-1")
    gone = next(v for v in fleet.instances if v != leader)
    fleet.kill(gone)
    assert wait_for(lambda: any(v["vantage"] == gone and not v["live"] for v in
                                fleet.instances[leader].cluster()["vantages"]), 15)
    config = fleet.instances[leader].config
    r = status(config)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"  vantage {gone}: EXPIRED, last seen \d+ s ago \(at \d\d:\d\d:\d\d\): "
                     r"its view expired with its lease: not counted\n", r.stdout), r.stdout
    assert f"vantage {leader} (host " in r.stdout
    assert "ap-south-1" not in r.stdout  # in controller.cluster.vantages, but never ran
    views = json.loads(status(config, "--json").stdout)["cluster"]["vantages"]
    expired = [v for v in views if v["vantage"] == gone]
    assert len(expired) == 1 and expired[0]["live"] is False, views
    assert time.time() - 60 < expired[0]["last_seen"] < time.time()


def test_status_without_etcd_quorum_shows_this_machines_instance_and_the_failed_members(
        fleet: Fleet) -> None:
    started(fleet, "us-east-1", "eu-west-1")
    here = fleet.instances["us-east-1"]
    a, b = fleet.etcd.members[0], fleet.etcd.members[1]
    fleet.etcd.kill(a)
    fleet.etcd.kill(b)
    try:
        assert wait_for(lambda: any("etcd" in p for p in here.status().get("problems", [])),
                        30), fleet.logs()
        r = status(here.config)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (f"STALE STATE: etcd unreachable or without quorum: no instance can be elected "
                f"or write DNS: shown is the own /status of this machine's instance (vantage "
                f"us-east-1, http://127.0.0.1:{here.api_port})") in r.stdout, r.stdout
        for member in (a, b):
            assert f"etcd member {member.client_url} failed: " in r.stdout, r.stdout
        assert "problem: etcd unreachable or without quorum" in r.stdout
        assert "  us-east-1: " in r.stdout and "api.example.test. A failover" in r.stdout
        data = json.loads(status(here.config, "--json").stdout)
        assert {f["member"] for f in data["etcd_failed"]} >= {a.client_url, b.client_url}
        # nothing answers on this machine either: what failed, and exit 1
        fleet.kill("us-east-1")
        r = status(here.config)
        assert r.returncode == 1 and r.stdout == "", r.stdout
        assert "\nerror: no etcd member answered: " in "\n" + r.stderr and a.client_url in \
            r.stderr and (f"no instance can be elected or write DNS); no instance of the fleet "
                          f"answers on this machine at http://127.0.0.1:{here.api_port}\n"
                          ) in r.stderr, r.stderr
    finally:
        fleet.etcd.start_member(a)
        fleet.etcd.start_member(b)


def test_an_instance_started_without_etcd_quorum_waits_for_it_and_joins(
        fleet: Fleet) -> None:
    started(fleet, "us-east-1")
    a, b = fleet.etcd.members[0], fleet.etcd.members[1]
    fleet.etcd.kill(a)
    fleet.etcd.kill(b)
    try:
        fleet.add("eu-west-1")
        late = fleet.start("eu-west-1")
        # it probes and serves /status, saying what it waits for, and does not exit
        assert wait_for(lambda: any("etcd" in p for p in late.status().get("problems", [])),
                        60), fleet.log("eu-west-1")
        assert wait_for(lambda: late.status().get("regions", {}).get("us-east-1", {}).get(
            "healthy") is True, 30), late.status()
        assert late.process is not None and late.process.poll() is None, fleet.log("eu-west-1")
    finally:
        fleet.etcd.start_member(a)
        fleet.etcd.start_member(b)
    fleet.etcd.wait_healthy()
    # quorum back: it joins, and the leader counts its view
    assert wait_for(lambda: all(
        sum(x.get("ready", False) for x in i.cluster().get("vantages", [])) == 2
        for i in fleet.instances.values()), 60), fleet.logs()
    assert late.process.poll() is None


def test_quorum_lost_and_back_without_any_change_writes_nothing(fleet: Fleet) -> None:
    started(fleet, "us-east-1", "eu-west-1")
    serial = fleet.env.serial()
    a = fleet.etcd.members[0]
    b = fleet.etcd.members[1]
    fleet.etcd.kill(a)
    fleet.etcd.kill(b)
    assert wait_for(lambda: not fleet.leaders(), 30)
    fleet.etcd.start_member(a)
    fleet.etcd.start_member(b)
    fleet.etcd.wait_healthy()
    assert wait_for(lambda: len(fleet.leaders()) == 1, 30), fleet.logs()
    leader = fleet.leaders()[0]
    assert wait_for(lambda: fleet.instances[leader].status().get("problems") == [], 30)
    # the only write a new epoch makes is its fence; no record moved
    assert fleet.env.answer() == {EAST}
    served = fleet.env.serial()
    assert served - serial <= 1, (serial, served)


def test_drain_from_another_machine_is_applied_by_the_leader(fleet: Fleet,
                                                             tmp_path: Path) -> None:
    started(fleet, "us-east-1", "eu-west-1")
    # another machine: its own directory and config, the same etcd; no state file at all
    ops = fleet.add("laptop")
    done = subprocess.run([sys.executable, "-m", "failover", "drain", "us-east-1", "--reason",
                           "maintenance", "--config", str(ops.config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "applied by the running controller (leader " in done.stdout
    assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
    assert not list(tmp_path.glob("**/failover.db"))
    status = subprocess.run([sys.executable, "-m", "failover", "history", "--config",
                             str(ops.config)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert "drain" in status.stdout and "maintenance" in status.stdout


def test_a_restore_the_leader_served_but_has_not_acknowledged_says_so(
        fleet: Fleet) -> None:
    # the leader reaches etcd through relays that can hold its history writes: its
    # acknowledgement of a change ("overrides in force") then comes late, its DNS writes not
    relays = [HeldRelay(_host_port(url)) for url in fleet.etcd.endpoints]
    try:
        leader = fleet.add("us-east-1")
        leader.config.write_text(re.sub(
            r"etcd: \{endpoints: \[[^]]*\]", "etcd: {endpoints: [" + ", ".join(
                f"http://127.0.0.1:{r.port}" for r in relays) + "]", leader.config.read_text()))
        fleet.start("us-east-1")
        assert wait_for(lambda: fleet.leaders() == ["us-east-1"], 60), fleet.logs()
        assert wait_for(lambda: fleet.env.answer() == {EAST}, 30), fleet.logs()
        ops = fleet.add("laptop")  # the operator's machine, reaching etcd directly

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "failover", *args, "--config",
                                   str(ops.config)], cwd=ROOT, capture_output=True, text=True,
                                  timeout=60, check=False)

        assert "applied by the running controller" in cli("drain", "us-east-1").stdout
        assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
        for relay in relays:
            relay.hold(only=base64.b64encode(b"/failover/test/histor"))  # history keys
        r = cli("restore", "us-east-1")
        assert fleet.env.answer() == {EAST}  # the leader wrote it
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"us-east-1 restored; saved, and DNS already serves api\.example\.test\. "
                         r"A from us-east-1, though the running controller \(leader us-east-1 "
                         r"\(host [^)]*\)\) has not acknowledged it within 5 s", r.stdout), r.stdout
    finally:
        for relay in relays:
            relay.close()


def test_demo_fleet_elects_a_leader_and_stops_everything(tmp_path: Path,
                                                         etcd: LocalEtcd) -> None:
    del etcd  # only its check that etcd is installed (the demo starts its own)
    out_path = tmp_path / "demo.out"
    proc = subprocess.Popen([sys.executable, "-m", "failover", "demo", "--fleet", "2", "--dir",
                             str(tmp_path / "d")], cwd=ROOT, stdout=out_path.open("w"),
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: "Ctrl-C stops the fleet" in out_path.read_text(), 60), \
            out_path.read_text()
        text = out_path.read_text()
        instances = re.findall(r": PID (\d+), status http://127\.0\.0\.1:(\d+)/", text)
        assert len(instances) == 2, text
        assert wait_for(lambda: sorted(api_status(int(port)).get("cluster", {}).get("role", "")
                                       for _, port in instances) == ["follower", "leader"],
                        60), text
        for vantage in ("us-east-1", "eu-west-1"):  # each instance's TSIG secret: private
            st = os.lstat(tmp_path / "d" / vantage / "tsig.secret")
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, vantage
        pids = [int(pid) for pid, _ in instances]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
        assert wait_for(lambda: not any(_alive(p) for p in pids), 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
