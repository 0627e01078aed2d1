"""Ownership markers against a real named: plan reads them, writes them, then has nothing to do;
a name that leaves the config goes with its marker (ownership.prune), under the guard.

Who may write a name is tested without I/O in tests/test_reconcile.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from failover.localdns import LocalNamed
from tests.builders import EXAMPLES, ROOT
from tests.service_env import EAST, WEST, Env, wait_for


def plan_cli(cfg: Path, secret: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAILOVER_TSIG_SECRET": secret}
    return subprocess.run([sys.executable, "-m", "failover", "plan", "--config", str(cfg),
                           "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60, check=False)


def test_plan_reads_bind_and_is_empty_once_applied(named: LocalNamed, tmp_path: Path) -> None:
    text = (EXAMPLES / "contract.yaml").read_text().replace("port: 15353",
                                                            f"port: {named.port}")
    cfg = tmp_path / "f.yaml"
    cfg.write_text(text)
    first = plan_cli(cfg, named.tsig_secret)
    assert first.returncode == 2, first.stderr
    data = json.loads(first.stdout)
    assert data["actual"] == "read from provider bind"
    names = ["api.example.test.", "app.example.test.", "www.example.test."]
    assert [c["action"] for c in data["changes"]] == ["create"] * 6
    created = {(c["name"], c["type"]): c["values"] for c in data["changes"]}
    # each name with its marker beside it, naming this controller (the default owner id)
    assert {k for k in created if k[1] == "A"} == {(n, "A") for n in names}
    for n in names:
        assert created[(f"_failover.{n}", "TXT")] == ['"heritage=failover,owner=failover"']
    # apply what plan showed, through the adapter, then plan again: nothing to do
    from failover.config import load_config
    from failover.dns import make_adapter
    from failover.health import initial_snapshot
    from failover.reconcile import plan_step, read_actual
    from policies import Overrides

    os.environ["FAILOVER_TSIG_SECRET"] = named.tsig_secret
    try:
        conf = load_config(cfg)
        adapter = make_adapter(conf)
        assert adapter is not None
        actual = read_actual(conf, adapter)
        step = plan_step(conf, initial_snapshot(conf, 0.0), Overrides(), {}, 0.0, actual)
        adapter.apply(step.changes, actual)
    finally:
        del os.environ["FAILOVER_TSIG_SECRET"]
    again = plan_cli(cfg, named.tsig_secret)
    assert again.returncode == 0, again.stdout
    for n in names:  # the markers are served as planned
        assert dig(named, f"_failover.{n}", "TXT") == {'"heritage=failover,owner=failover"'}
    # a wrong key: a clear error, exit 1, no traceback
    bad = plan_cli(cfg, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")
    assert bad.returncode == 1 and "BADSIG" in bad.stderr and "Traceback" not in bad.stderr


def test_plan_with_an_unset_secret_is_an_error_exit_1(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_TSIG_SECRET"}
    r = subprocess.run([sys.executable, "-m", "failover", "plan", "--config",
                        str(EXAMPLES / "contract.yaml")], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=60, check=False)
    # 1, not 2: for plan, 2 means "changes pending" (a CI gate must tell them apart)
    assert r.returncode == 1 and "FAILOVER_TSIG_SECRET is not set" in r.stderr


# ------------------------------------------------ names removed from the config (prune)

OLD = "old.example.test."


def a_record(name: str, order: str = "[eu-west-1, us-east-1]") -> str:
    """One more record for the service config (tests/service_env.py), as YAML."""
    return (f"  - name: {name}\n    type: A\n    ttl: 30\n    policy: failover\n"
            f"    order: {order}\n")


def dig(named: LocalNamed, name: str, rtype: str = "A") -> set[str]:
    """What named answers (a real query, not through the adapter)."""
    answer = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=named.port,
                           timeout=2)
    return {rd.to_text() for rrset in answer.answer
            if dns.rdatatype.to_text(rrset.rdtype) == rtype for rd in rrset}


def ttl(named: LocalNamed, name: str) -> int | None:
    answer = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=named.port,
                           timeout=2)
    return next((rrset.ttl for rrset in answer.answer), None)


def foreign_update(named: LocalNamed, name: str, rtype: str, *values: str) -> None:
    """A write by someone else (another controller, a person with nsupdate)."""
    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    upd = dns.update.UpdateMessage(named.dynamic_zone, keyring=keyring)
    upd.replace(name, 60, rtype, *values)
    assert dns.query.udp(upd, "127.0.0.1", port=named.port, timeout=2).rcode() == 0


def marker_of(named: LocalNamed, name: str) -> set[str]:
    return dig(named, f"_failover.{name}", "TXT")


OURS = {'"heritage=failover,owner=failover"'}


def test_a_name_removed_from_the_config_is_deleted_with_its_marker_at_reload(env: Env) -> None:
    base = env.config.read_text()
    env.config.write_text(base + a_record(OLD))
    # names this controller must never touch: another owner's, and one nobody marked
    foreign_update(env.named, "theirs.example.test.", "A", "127.0.7.7")
    foreign_update(env.named, "_failover.theirs.example.test.", "TXT",
                   '"heritage=failover,owner=west"')
    foreign_update(env.named, "hand.example.test.", "A", "127.0.8.8")
    proc = env.start_controller()
    assert wait_for(lambda: env.answer() == {EAST} and env.answer(OLD) == {WEST}), env.log()
    assert marker_of(env.named, OLD) == OURS
    env.config.write_text(base)  # old.example.test. leaves the config
    # plan says what a reload will do: delete the name and its marker
    before = plan_cli(env.config, env.named.tsig_secret)
    assert before.returncode == 2, before.stdout + before.stderr
    data = json.loads(before.stdout)
    assert [(c["action"], c["name"], c["type"]) for c in data["changes"]] == [
        ("delete", f"_failover.{OLD}", "TXT"), ("delete", OLD, "A")]
    assert [(o["name"], o["action"]) for o in data["removed_from_config"]] == [(OLD, "delete")]
    os.kill(proc.pid, signal.SIGHUP)
    assert wait_for(lambda: env.answer(OLD) == set() and marker_of(env.named, OLD) == set(),
                    timeout=10), env.log()
    assert env.answer() == {EAST}
    assert env.answer("theirs.example.test.") == {"127.0.7.7"}
    assert marker_of(env.named, "theirs.example.test.") == {'"heritage=failover,owner=west"'}
    assert env.answer("hand.example.test.") == {"127.0.8.8"}
    history = [e["message"] for e in json.loads(env.cli("history", "--json").stdout)]
    assert any(m.startswith(f"pruned 1 name(s) no longer in the config (deleted with their "
                            f"markers): {OLD}") for m in history), history
    after = plan_cli(env.config, env.named.tsig_secret)
    assert after.returncode == 0 and json.loads(after.stdout)["removed_from_config"] == []


def test_prune_false_keeps_a_removed_name_and_plan_lists_it(env: Env) -> None:
    base = env.config.read_text()
    env.config.write_text(base + a_record(OLD))
    env.start_controller()
    assert wait_for(lambda: env.answer() == {EAST} and env.answer(OLD) == {WEST}), env.log()
    env.stop_controller()
    # old leaves the config, pruning is off; api's TTL changes, so the restarted
    # controller writes api (in the same plan that would have deleted old)
    env.config.write_text(base.replace("ttl: 30", "ttl: 45") + "ownership:\n  prune: false\n")
    env.start_controller()
    assert wait_for(lambda: ttl(env.named, "api.example.test.") == 45), env.log()
    assert env.answer(OLD) == {WEST} and marker_of(env.named, OLD) == OURS
    shown = env.cli("plan")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert (f"left in DNS, no longer in the config: {OLD} (A 127.0.2.1) kept, unmonitored "
            "(ownership.prune: false)") in shown.stdout
    # pruning on again, and a restart: the name goes
    env.stop_controller()
    env.config.write_text(base.replace("ttl: 30", "ttl: 45"))
    env.start_controller()
    assert wait_for(lambda: env.answer(OLD) == set() and marker_of(env.named, OLD) == set(),
                    timeout=10), env.log()
    assert env.answer() == {EAST}


def test_removing_most_of_the_config_is_refused_and_deletes_nothing(env: Env) -> None:
    base = env.config.read_text()
    names = [f"n{i}.example.test." for i in range(11)]
    env.config.write_text(base + "".join(a_record(n) for n in names))
    assert run_once(env).returncode == 0
    assert all(env.answer(n) == {WEST} for n in names)
    env.config.write_text(base)  # 11 of 12 names gone: 22 of 24 record sets
    shown = env.cli("plan")
    assert shown.returncode == 2
    assert ("refused by safety guard: 22 of 24 managed record sets would be deleted (more "
            "than max_delete_share 30%), 11 name(s) among them no longer in the config: "
            "nothing is pruned") in shown.stdout
    refused = run_once(env)
    assert refused.returncode == 1 and "refused by safety guards: 22 of 24" in refused.stderr
    assert all(env.answer(n) == {WEST} and marker_of(env.named, n) == OURS for n in names)
    assert run_once(env, "--force").returncode == 0  # the operator means it
    assert all(env.answer(n) == set() and marker_of(env.named, n) == set() for n in names)
    assert env.answer() == {EAST}


def run_once(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", "run", "--once", *args,
                           "--config", str(env.config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
