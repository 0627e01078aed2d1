"""Ownership markers against a real named: plan reads them, writes them, then has nothing to do.

Who may write a name is tested without I/O in tests/test_reconcile.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from failover.localdns import LocalNamed
from tests.builders import EXAMPLES, ROOT
from tests.dns.test_bind import dig


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
