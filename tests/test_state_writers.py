"""Whoever can write the state (a fleet's etcd prefix, a state file) can disturb the
controller at worst, never choose what DNS serves: a poisoned decision, views of
vantages the config does not name and a malformed key change nothing named serves and
stop no instance; and write access to the prefix is what an etcd role limited to it
gives (real etcd with auth, real named, real controller processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover.cluster import watch
from failover.cluster.etcd import Etcd, EtcdError
from failover.cluster.watch import PrefixCache
from failover.health import CheckState
from failover.localdns import LocalNamed
from failover.localetcd import LocalEtcd
from failover.state.etcd import EtcdState
from failover.state.sqlite import SqliteState
from policies import Decision
from tests.builders import ROOT
from tests.fleet_env import Fleet, Instance
from tests.service_env import EAST, WEST, Env, http_get, wait_for
from tests.test_fleet import Watcher, fence_held, started
from tests.test_fleet import etcd as etcd
from tests.test_fleet import fleet as fleet

PREFIX = "/failover/test"
EAST_ID, WEST_ID = f"us-east-1/{EAST}", f"eu-west-1/{WEST}"


def poisoned() -> Decision:
    """The decision an intruder stores: its own address as the last known good answer."""
    return Decision(name="api.example.test.", type="A", ttl=30, policy="failover",
                    regions=("us-east-1",), values=(EAST,), shares={"us-east-1": 1.0},
                    basis="health", reason="first tier healthy", at=time.time() - 60, tier=0,
                    last_good=(("us-east-1",), ("6.6.6.6",)), usable=("us-east-1",))


def every_region_down() -> dict[str, CheckState]:
    """Kept state machines that saw both regions fail (as after an outage)."""
    since = time.time() - 60
    return {f"{eid}|web|local": CheckState(False, since, 0, "after 2 failures: refused")
            for eid in (EAST_ID, WEST_ID)}


def last_known_good(config: Path) -> None:
    text = config.read_text()
    assert "    policy: failover\n" in text
    config.write_text(text.replace("    policy: failover\n",
                                   "    policy: failover\n    fail_mode: last_known_good\n"))


def readyz(port: int) -> tuple[int, str]:
    return http_get(port, "/readyz")


def record(inst: Instance) -> dict[str, object]:
    return next((r for r in inst.status().get("records", [])
                 if r["name"] == "api.example.test."), {})


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", *args, "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def view(down: list[str]) -> str:
    """A vantage's view (as an instance publishes it) that sees `down` down."""
    checks = {f"{eid}|web": [0 if eid in down else 1, time.time(), "connect timeout", None]
              for eid in (EAST_ID, WEST_ID)}
    return json.dumps({"host": "elsewhere", "pid": 1, "ready": True, "at": time.time(),
                       "checks": checks})


# ------------------------------------------------------------ stored decisions

def test_a_poisoned_decision_in_etcd_changes_nothing_dns_serves(fleet: Fleet) -> None:
    inst = fleet.add("us-east-1")
    last_known_good(inst.config)
    store = EtcdState(Etcd(fleet.etcd.endpoints), PREFIX, "us-east-1")
    try:  # written by someone who can write under the prefix, while every region is down
        store.save_decisions([poisoned()])
        store.save_checks(every_region_down())
    finally:
        store.close()
    fleet.env.stop_region(EAST)
    fleet.env.stop_region(WEST)
    watcher = Watcher(fleet.env)
    fleet.start("us-east-1")
    # every region down, the memory of a last good answer dropped: the record fails open
    assert wait_for(lambda: record(inst).get("basis") == "fail_open", 60), fleet.logs()
    assert wait_for(lambda: fleet.env.answer() == {EAST} and fence_held(fleet.named), 30), \
        fleet.logs()
    assert all("6.6.6.6" not in answer for answer in watcher.done())
    log = fleet.log("us-east-1")
    assert "event=stored_decision_distrusted api.example.test. A: last_good values" in log
    assert "'6.6.6.6'" in log
    history = cli(inst.config, "history").stdout
    assert "stored decision not trusted" in history and "6.6.6.6" in history


def test_a_poisoned_decision_in_the_state_file_changes_nothing_dns_serves(env: Env) -> None:
    last_known_good(env.config)
    state = SqliteState(env.dir / "failover.db")
    try:
        state.save_decisions([poisoned()])
        state.save_checks(every_region_down())
    finally:
        state.close()
    env.stop_region(EAST)
    env.stop_region(WEST)
    watcher = Watcher(env)
    env.start_controller()
    assert wait_for(lambda: env.record().get("basis") == "fail_open", 60), env.log()
    assert wait_for(lambda: env.answer() == {EAST}, 30), env.log()
    assert all("6.6.6.6" not in answer for answer in watcher.done())
    assert "event=stored_decision_distrusted" in env.log()
    assert "stored decision not trusted" in env.cli("history").stdout


# ------------------------------------------------------------------ vantages

def test_views_of_vantages_the_config_does_not_name_are_not_counted(fleet: Fleet) -> None:
    leader = started(fleet, "us-east-1", "eu-west-1", "ap-south-1")
    serial = fleet.env.serial()
    client = Etcd(fleet.etcd.endpoints)
    fakes = sorted(f"intruder-{i:02d}" for i in range(14))
    for name in fakes:  # 14 views seeing everything down outvote 3 at 18 %, if counted
        client.put(f"{PREFIX}/live/vantages/{name}", view(down=[EAST_ID, WEST_ID]))

    def named(inst: Instance) -> bool:
        cluster = inst.cluster()
        return [u["vantage"] for u in cluster.get("unknown_vantages", [])] == fakes

    assert wait_for(lambda: all(named(i) for i in fleet.instances.values()), 30), \
        fleet.instances[leader].cluster()
    inst = fleet.instances[leader]
    status = inst.status()
    assert status["regions"]["us-east-1"]["healthy"], status["regions"]
    assert [v["vantage"] for v in status["cluster"]["vantages"]] == [
        "ap-south-1", "eu-west-1", "us-east-1"]
    assert fleet.env.answer() == {EAST} and fleet.env.serial() == serial  # no failover
    code, text = readyz(inst.api_port)
    assert code == 503 and "14 vantage(s) not in controller.cluster.vantages" in text
    assert "'intruder-00'" in text and "and 9 more" in text
    log = fleet.log(leader)
    assert log.count("event=vantage_refused") == 6, log  # five named, then how many more
    assert "ERROR" in next(line for line in log.splitlines() if "vantage_refused" in line)
    assert "not in controller.cluster.vantages" in cli(inst.config, "history").stdout
    # the intruder's keys gone: every instance is ready again
    client.delete(f"{PREFIX}/live/vantages/intruder-", prefix=True)
    assert wait_for(lambda: all(readyz(i.api_port)[0] == 200
                                for i in fleet.instances.values()), 30)


def test_a_malformed_view_or_override_is_named_and_skipped_and_no_instance_exits(
        fleet: Fleet) -> None:
    started(fleet, "us-east-1", "eu-west-1", "ap-south-1")
    client = Etcd(fleet.etcd.endpoints)
    # no lease: a key that stays (under systemd, a crash on it would be a crash loop)
    client.put(f"{PREFIX}/live/vantages/sa-east-1",
               json.dumps({"ready": True, "checks": {f"{EAST_ID}|web": [1]}}))
    client.put(f"{PREFIX}/overrides/drain/eu-west-1", "[1]")

    def named(inst: Instance) -> bool:
        bad = inst.cluster().get("unreadable_views", [])
        return [b["vantage"] for b in bad] == ["sa-east-1"] and \
            "not [healthy, since, reason, latency]" in bad[0]["why"]

    assert wait_for(lambda: all(named(i) for i in fleet.instances.values()), 30), fleet.logs()
    for vantage, inst in fleet.instances.items():
        assert inst.process is not None and inst.process.poll() is None, vantage
        # each says so when it reads them (the override at its next tick)
        for said in ("event=vantage_refused vantage='sa-east-1'",
                     f"key='{PREFIX}/overrides/drain/eu-west-1'"):
            assert wait_for(lambda v=vantage, s=said: s in fleet.log(v), 30), fleet.log(vantage)
    # the fleet works on: a region down is failed over
    fleet.env.stop_region(EAST)
    assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
    assert all(i.process is not None and i.process.poll() is None
               for i in fleet.instances.values())


# ---------------------------------------------------------------- etcd roles

def etcdctl(etcd: LocalEtcd, *args: str, user: str | None = None) -> None:
    subprocess.run(["etcdctl", "--endpoints", ",".join(etcd.endpoints),
                    *(["--user", user] if user else []), *args], check=True,
                   capture_output=True, text=True, timeout=30,
                   env={**os.environ, "ETCDCTL_API": "3"})


def as_user(fleet: Fleet, vantage: str, user: str, password: str) -> Instance:
    """An instance (or a CLI machine) whose config signs in to etcd as `user`."""
    inst = fleet.add(vantage)
    (inst.config.parent / "etcd.password").write_text(password + "\n")
    text = inst.config.read_text()
    assert f"prefix: {PREFIX}}}" in text
    inst.config.write_text(text.replace(f"prefix: {PREFIX}}}", f"prefix: {PREFIX}, user: "
                                        f"{user}, password_file: ./etcd.password}}"))
    return inst


def test_a_role_limited_to_the_prefix_runs_the_fleet_and_a_user_outside_it_is_refused(
        fleet: Fleet, named: LocalNamed, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    e = fleet.etcd
    etcdctl(e, "user", "add", "root:root-pw")
    etcdctl(e, "role", "add", "failover")
    etcdctl(e, "role", "grant-permission", "failover", "--prefix=true", "readwrite",
            f"{PREFIX}/")
    etcdctl(e, "user", "add", "failover:fleet-pw")
    etcdctl(e, "user", "grant-role", "failover", "failover")
    etcdctl(e, "role", "add", "other")
    etcdctl(e, "role", "grant-permission", "other", "--prefix=true", "readwrite", "/other/")
    etcdctl(e, "user", "add", "intruder:intruder-pw")
    etcdctl(e, "user", "grant-role", "intruder", "other")
    etcdctl(e, "auth", "enable")
    # the store as the fleet's user: what the controller does besides the election,
    # all within the prefix (history retention compacts etcd)
    store = EtcdState(Etcd(e.endpoints, user="failover", password="fleet-pw"), PREFIX, "x")
    monkeypatch.setattr(watch, "READ_TIMEOUT", 0.2)  # a quiet watch checks etcd is there
    watcher = Etcd(e.endpoints, user="failover", password="fleet-pw")
    checks: list[str] = []
    revision = watcher.revision
    monkeypatch.setattr(watcher, "revision", lambda *key: checks.append("") or revision(*key))
    cache = PrefixCache(watcher, f"{PREFIX}/live/")
    try:
        store.watch()
        store.reopen()
        store.record([])
        store.prune(older_than=0.0, keep=1000)
        store.prune(older_than=0.0, keep=1000)
        assert store.overrides() == []
        cache.start()
        assert wait_for(lambda: len(checks) >= 2, 10)  # two quiet watches, etcd checked
        assert cache.error is None and "etcd_watch_failed" not in caplog.text, caplog.text
    finally:
        cache.stop()
        watcher.close()
        store.close()
    inst = as_user(fleet, "us-east-1", "failover", "fleet-pw")
    fleet.start("us-east-1")
    assert wait_for(lambda: inst.leads(), 60), fleet.logs()
    assert wait_for(lambda: fleet.env.answer() == {EAST} and fence_held(named), 30), fleet.logs()
    # a drain from another machine signed in as the fleet's user is applied
    ops = as_user(fleet, "laptop", "failover", "fleet-pw")
    done = cli(ops.config, "drain", "us-east-1", "--reason", "maintenance")
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: fleet.env.answer() == {WEST}, 30), fleet.logs()
    assert wait_for(lambda: readyz(inst.api_port)[0] == 200, 30), readyz(inst.api_port)
    # a user whose role is elsewhere, or nobody signed in, cannot write under the prefix
    for client in (Etcd(e.endpoints, user="intruder", password="intruder-pw"),
                   Etcd(e.endpoints)):
        try:
            for key in (f"{PREFIX}/live/vantages/intruder", f"{PREFIX}/decisions/meta"):
                try:
                    client.put(key, view(down=[EAST_ID, WEST_ID]))
                except EtcdError as exc:
                    assert "permission denied" in str(exc) or "user name" in str(exc), exc
                else:
                    raise AssertionError(f"{key} was written without the fleet's role")
        finally:
            client.close()
    intruder = as_user(fleet, "elsewhere", "intruder", "intruder-pw")
    refused = cli(intruder.config, "restore", "us-east-1")
    assert refused.returncode == 1 and "permission denied" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert fleet.env.answer() == {WEST}
