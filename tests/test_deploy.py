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
    analyze = need("systemd-analyze", "systemd")
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


UNIT = DEPLOY / "systemd" / "failover.service"
# measured with systemd 252: 1.8 before ProtectProc, ProcSubset, PrivateUsers, RemoveIPC
# and the @privileged/@resources filter; 1.2 with them (10 = fully exposed)
EXPOSURE_AT_MOST = 1.2


def test_the_systemd_unit_is_sandboxed(tmp_path: Path) -> None:
    analyze = need("systemd-analyze", "systemd")
    unit = tmp_path / "failover.service"
    unit.write_text(UNIT.read_text())
    r = subprocess.run([analyze, "security", "--offline=yes", "--json=short", str(unit)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    checks = {c["name"]: c["set"] for c in json.loads(r.stdout)}
    for name in ("ProtectProc=", "ProcSubset=", "PrivateUsers=", "RemoveIPC=",
                 "SystemCallFilter=~@privileged", "SystemCallFilter=~@resources",
                 "NoNewPrivileges=", "ProtectSystem=", "CapabilityBoundingSet=~CAP_SYS_ADMIN"):
        assert checks.get(name) is True, name
    over = subprocess.run([analyze, "security", "--offline=yes",
                           f"--threshold={round(EXPOSURE_AT_MOST * 10)}", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert over.returncode == 0, over.stdout.splitlines()[-1:]


def test_the_systemd_unit_keeps_secrets_in_credentials(tmp_path: Path) -> None:
    """No secret in the service's environment; each path the unit tells the config to
    use is a credential the unit loads, and a config reads its secret there."""
    text = UNIT.read_text()
    active = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in active if line.startswith("EnvironmentFile=")]
    loaded = dict(re.findall(r"^#?LoadCredential=([\w-]+):(/\S+)$", text, re.M))
    named = dict(re.findall(r"^#\s+([\w.]+_file): /run/credentials/failover\.service/([\w-]+)$",
                            text, re.M))
    assert set(named) == {"provider.tsig.secret_file", "controller.token_file",
                          "controller.cluster.etcd.password_file"}, named
    assert set(named.values()) <= set(loaded), (named, loaded)
    assert "Environment=AWS_SHARED_CREDENTIALS_FILE=%d/aws" in text and "aws" in loaded
    # $CREDENTIALS_DIRECTORY is an absolute path: the config's secret_file may name it
    from failover.config import parse_config

    credentials = tmp_path / "run-credentials-failover.service"
    credentials.mkdir()
    (credentials / named["provider.tsig.secret_file"]).write_text("c2VjcmV0LWtleQ==\n")
    contract = (ROOT / "examples" / "contract.yaml").read_text()
    tsig = re.search(r"secret_(env|file): \S+", contract)
    assert tsig is not None
    cfg = parse_config(contract.replace(tsig.group(), "secret_file: "
                                        f"{credentials / named['provider.tsig.secret_file']}"),
                       base_dir=tmp_path / "elsewhere")
    secret = cfg.tsig_secret()
    assert secret is not None and secret.get_secret_value() == "c2VjcmV0LWtleQ=="


def test_metrics_have_no_created_series() -> None:
    metrics = Metrics()
    metrics.reconcile.observe(0.1)
    metrics.dns_changes.labels("create").inc()
    assert b"_created" not in metrics.render()
