"""The CLI as users run it: a real process, its output and its exit code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import EXAMPLES, ROOT

CONTRACT = EXAMPLES / "contract.yaml"


def failover(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "failover", *args], capture_output=True,
                          text=True, cwd=ROOT, env=full_env, timeout=60, check=False)


def test_validate_ok() -> None:
    r = failover("validate", "--config", str(CONTRACT), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0, r.stderr
    assert "ok: zone example.test., provider bind, 3 records, 2 regions" in r.stdout
    assert "c2VjcmV0" not in r.stdout + r.stderr


def test_validate_warns_about_a_missing_secret_but_passes() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_TSIG_SECRET"}
    r = subprocess.run([sys.executable, "-m", "failover", "validate", "--config", str(CONTRACT)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert r.returncode == 0
    assert "FAILOVER_TSIG_SECRET is not set" in r.stderr


def test_validate_broken_config_exits_2_naming_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONTRACT.read_text().replace("eu-west-1: 30}", "eu-west-1: 300}"))
    r = failover("validate", "--config", str(bad))
    assert r.returncode == 2
    assert f"{bad}:55: records[1].weights.eu-west-1: weight must be between 0 and 255, got 300" \
        in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file_exits_2() -> None:
    r = failover("validate", "--config", "/nonexistent/f.yaml")
    assert r.returncode == 2 and "cannot read config" in r.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_plan_prints_the_records_of_each_example(path: Path) -> None:
    r = failover("plan", "--config", str(path), "--json", "--no-read")
    data = json.loads(r.stdout)
    assert data["decisions"], r.stderr
    # against an empty zone every answer is a create, so plan exits 2 (changes pending)
    creates = [c for c in data["changes"] if c["action"] == "create" and c["type"] != "TXT"]
    answered = [d for d in data["decisions"] if d["values"]]
    # one record set per answer; Route 53 gets one per region (native routing)
    assert {(c["name"], c["type"]) for c in creates} == {(d["name"], d["type"]) for d in answered}
    if data["provider"] == "route53":
        assert all("set_identifier" in c for c in creates)
    else:
        assert len(creates) == len(answered)
    # each written name gets its ownership marker (no DNS at all for provider none)
    markers = {c["name"] for c in data["changes"] if c["type"] == "TXT"}
    if data["provider"] != "none":
        assert markers == {f"_failover.{d['name']}" for d in answered}
    assert r.returncode == (2 if creates else 0)


def test_plan_assume_moves_the_answer() -> None:
    r = failover("plan", "--config", str(CONTRACT), "--no-read")
    assert r.returncode == 2
    assert re.search(r"\+ create  api\.example\.test\. +A +30 +127\.0\.1\.1\n", r.stdout)
    r = failover("plan", "--config", str(CONTRACT), "--assume", "us-east-1=down", "--no-read")
    assert re.search(r"\+ create  api\.example\.test\. +A +30 +127\.0\.2\.1\n", r.stdout)
    assert "eu-west-1 serves: us-east-1 unhealthy since" in r.stdout


def test_plan_markdown() -> None:
    r = failover("plan", "--config", str(CONTRACT), "--markdown", "--no-read")
    assert r.returncode == 2
    assert "| create | `api.example.test.` | A | 30 | `127.0.1.1` |" in r.stdout


def test_plan_with_nothing_to_do_exits_0() -> None:
    r = failover("plan", "--config", str(EXAMPLES / "cname-calculated-none.yaml"),
                 "--assume", "primary=down", "--assume", "standby=down")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no answer (fail mode closed)" in r.stdout and "no changes" in r.stdout


@pytest.mark.parametrize("arg,words", [("us-east-9=down", "unknown region 'us-east-9'"),
                                       ("us-east-1=sideways", "expected REGION=up")])
def test_plan_bad_assume_is_an_error_exit_1(arg: str, words: str) -> None:
    r = failover("plan", "--config", str(CONTRACT), "--assume", arg, "--no-read")
    assert r.returncode == 1 and words in r.stderr  # plan: 2 is "changes pending"


def test_schema_is_json_schema() -> None:
    r = failover("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "failover configuration" and "records" in schema["properties"]


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from failover.cli import cli\n"
            "heavy = [m for m in ('pydantic', 'yaml', 'dns', 'boto3', 'httpx') if m in sys.modules]\n"
            "print(','.join(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, check=True)
    assert r.stdout.strip() == ""


def test_status_shows_the_state_when_dns_cannot_be_asked(tmp_path: Path) -> None:
    config = tmp_path / "contract.yaml"
    config.write_text(CONTRACT.read_text())
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_TSIG_SECRET"}
    r = subprocess.run([sys.executable, "-m", "failover", "status", "--config", str(config)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert "regions:" in r.stdout and "overrides:" in r.stdout
    data = json.loads(subprocess.run(
        [sys.executable, "-m", "failover", "status", "--json", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=60, check=False).stdout)
    assert "FAILOVER_TSIG_SECRET is not set" in data["served_unknown"]


def test_an_exposed_listener_without_tls_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    text = CONTRACT.read_text().replace("listen: 127.0.0.1:9053", "listen: 0.0.0.0:9053")
    config.write_text(text)
    r = failover("validate", "--config", str(config), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0 and "is not loopback and the API speaks plain HTTP" in r.stderr
    config.write_text(text.replace("listen: 0.0.0.0:9053",
                                   "listen: 0.0.0.0:9053\n  tls_terminated: true"))
    r = failover("validate", "--config", str(config), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0 and "plain HTTP" not in r.stderr


def test_config_is_optional_in_help_with_the_environment_variable() -> None:
    assert "required" in failover("status", "--help").stdout
    r = failover("status", "--help", env={"FAILOVER_CONFIG": str(CONTRACT)})
    assert "[env var: FAILOVER_CONFIG]" in r.stdout and "required" not in r.stdout


def test_route53_latency_regions_named_like_aws_need_no_aws_region() -> None:
    from failover.config import parse_config
    from failover.errors import ConfigError

    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "    aws_region: us-east-1\n", "").replace("    aws_region: eu-west-1\n", "")
    text = text.split("records:")[0] + """records:
  - {name: app.example.test., type: A, policy: latency, regions: [us-east-1, eu-west-1]}
"""
    cfg = parse_config(text)
    assert cfg.aws_region_of("us-east-1") == "us-east-1"
    with pytest.raises(ConfigError, match="region 'east' needs aws_region"):
        parse_config(text.replace("us-east-1", "east"))


def test_durations_and_times_as_operators_write_them(tmp_path: Path) -> None:
    from failover.durations import MAX_EXPIRY, expiry, parse_duration

    assert parse_duration("2h30m") == 9000 and parse_duration("1d") == 86400
    assert parse_duration("90s") == 90 and parse_duration("1w") == 7 * 86400
    assert parse_duration("2x") is None and parse_duration("") is None
    assert expiry("30m", None, 1000.0) == 2800.0
    with pytest.raises(ValueError, match="at most a year"):
        expiry(f"{MAX_EXPIRY + 86400:.0f}s", None, 0.0)
    config = tmp_path / "contract.yaml"
    config.write_text(CONTRACT.read_text())
    r = failover("history", "--config", str(config), "--since", "2026-11-23T10:00Z")
    assert r.returncode == 0, r.stderr
    r = failover("history", "--config", str(config), "--since", "yesterday-ish")
    assert r.returncode == 2 and "ISO 8601" in r.stderr


def test_every_option_of_every_command_has_help() -> None:
    from failover.cli import cli

    missing = [f"{name} {opt.opts[0]}" for name, command in cli.commands.items()
               for opt in command.params
               if getattr(opt, "help", None) is None and opt.param_type_name == "option"]
    assert missing == []


def test_validate_refuses_an_etcd_password_over_plain_http_and_warns_on_loopback(
        tmp_path: Path) -> None:
    listen = "  listen: 127.0.0.1:9053        # /healthz /readyz /status /metrics\n"
    env = {"FAILOVER_TSIG_SECRET": "c2VjcmV0"}
    for url, code in (("http://10.0.1.5:2379", 2), ("http://127.0.0.1:2379", 0)):
        path = tmp_path / "fleet.yaml"
        path.write_text(CONTRACT.read_text().replace(listen, listen + (
            f"  cluster:\n    etcd: {{endpoints: [{url}], user: failover, "
            "password_env: ETCD_PASSWORD}\n    vantages: [us-east-1]\n"), 1))
        r = failover("validate", "--config", str(path), env=env)
        assert r.returncode == code, r.stderr
        if code == 2:
            assert "controller.cluster.etcd.endpoints[0]: http://10.0.1.5:2379: with user, " \
                "the etcd password would cross the network unencrypted" in r.stderr
        else:
            assert "warning: controller.cluster.etcd: user 'failover' authenticates over " \
                "http://" in r.stderr


def test_run_refuses_an_instance_whose_vantage_the_fleet_would_not_count(tmp_path: Path) -> None:
    listen = "  listen: 127.0.0.1:9053        # /healthz /readyz /status /metrics\n"
    path = tmp_path / "fleet.yaml"
    path.write_text(CONTRACT.read_text().replace(listen, listen + (
        "  cluster:\n    etcd: {endpoints: ['http://127.0.0.1:1']}\n    vantage: ap-south-1\n"
        "    vantages: [us-east-1, eu-west-1]\n"), 1))
    r = failover("run", "--config", str(path), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 2, r.stderr
    assert "this instance's vantage 'ap-south-1' (controller.cluster.vantage) is not in " \
        "controller.cluster.vantages" in r.stderr
    assert "Traceback" not in r.stderr
