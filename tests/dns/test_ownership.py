"""Ownership markers: who may write a name, shared by every adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from failover import plan
from failover.dns.ownership import claim, marker_value
from failover.localdns import LocalNamed
from failover.records import RecordSet
from tests.builders import EXAMPLES, ROOT

R = RecordSet.make
KEYS = {("api.example.test.", "A")}
WANT = [R("api.example.test.", "A", 30, ["127.0.1.1"])]


def marker(owner: str) -> RecordSet:
    return R("_failover.api.example.test.", "TXT", 30, [marker_value(owner)])


def test_a_free_name_is_claimed_with_a_marker() -> None:
    c = claim(WANT, [], KEYS, owner="east", prefix="_failover")
    assert c.desired == [*WANT, marker("east")] and not c.blocked
    assert ("_failover.api.example.test.", "TXT") in c.managed


def test_our_name_is_written() -> None:
    actual = [R("api.example.test.", "A", 30, ["127.0.2.1"]), marker("east")]
    c = claim(WANT, actual, KEYS, owner="east", prefix="_failover")
    assert not c.blocked
    changes = plan.diff(c.desired, actual, c.managed)
    assert [ch.action for ch in changes.changes] == ["upsert"]


def test_another_owner_blocks_unless_taken_over() -> None:
    actual = [R("api.example.test.", "A", 30, ["127.0.2.1"]), marker("west")]
    c = claim(WANT, actual, KEYS, owner="east", prefix="_failover")
    assert "owned by controller 'west'" in c.blocked["api.example.test."]
    assert not plan.diff(c.desired, actual, c.managed)  # nothing touched
    c = claim(WANT, actual, KEYS, owner="east", prefix="_failover", take_over=True)
    changes = plan.diff(c.desired, actual, c.managed)
    assert {(ch.action, ch.record.type) for ch in changes.changes} == {("upsert", "A"),
                                                                       ("upsert", "TXT")}


def test_unmarked_records_are_left_to_whoever_made_them() -> None:
    actual = [R("api.example.test.", "A", 30, ["127.0.2.1"])]
    c = claim(WANT, actual, KEYS, owner="east", prefix="_failover")
    assert "did not create" in c.blocked["api.example.test."]


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
    assert len([c for c in data["changes"] if c["action"] == "create"]) == 6  # 3 + markers
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
    # a wrong key: a clear error, exit 1, no traceback
    bad = plan_cli(cfg, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")
    assert bad.returncode == 1 and "BADSIG" in bad.stderr and "Traceback" not in bad.stderr


def test_plan_with_an_unset_secret_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_TSIG_SECRET"}
    r = subprocess.run([sys.executable, "-m", "failover", "plan", "--config",
                        str(EXAMPLES / "contract.yaml")], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=60, check=False)
    assert r.returncode == 2 and "FAILOVER_TSIG_SECRET is not set" in r.stderr
