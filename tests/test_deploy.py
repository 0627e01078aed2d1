"""deploy/: the alert rules (promtool), the dashboard and rules name only metrics the
controller exports, and the systemd unit verifies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from failover.metrics import Metrics
from tests.builders import ROOT

DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(failover_[a-z_]+)")


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed: make test installs {package}")
        pytest.skip(f"{tool} is not installed (apt-get install {package})")
    return path


def test_alert_rules_check_and_pass_their_tests() -> None:
    promtool = need("promtool", "prometheus")
    rules = DEPLOY / "prometheus"
    check = subprocess.run([promtool, "check", "rules", "alerts.yaml"], cwd=rules,
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", "alerts_test.yaml"], cwd=rules,
                          capture_output=True, text=True, timeout=120, check=False)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def exported() -> set[str]:
    """Every series name the controller's /metrics can carry."""
    names = set()
    for family in Metrics().registry.collect():
        names |= {family.name, *(family.name + s for s in ("_total", "_bucket", "_sum",
                                                          "_count"))}
    return names


def test_dashboard_and_rules_name_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "failover.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    queries += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    named = {m for q in queries for m in METRIC.findall(q)}
    assert named, "no failover_ metric in the queries"
    assert named <= exported(), f"not exported: {sorted(named - exported())}"
    # and what an on-call person needs is there
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for word in ("regions", "failovers", "probe latency", "dns write latency", "dns errors",
                 "health change to served"):
        assert word in titles, word
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert len(alerts) >= 8


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not available here")
    unit = (DEPLOY / "systemd" / "failover.service").read_text()
    exe = Path(sys.executable).parent / "failover"
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "StateDirectory=failover" in unit
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
        assert option in unit
    path = tmp_path / "failover.service"
    path.write_text(unit.replace("/usr/local/bin/failover", str(exe)))
    r = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                       timeout=60, check=False)
    problems = [line for line in (r.stdout + r.stderr).splitlines()
                if "failover.service" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr


def test_metrics_have_no_created_series() -> None:
    metrics = Metrics()
    metrics.reconcile.observe(0.1)
    metrics.dns_changes.labels("create").inc()
    assert b"_created" not in metrics.render()
