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


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["plan", "--help"],
                                  ["status", "--help"]])
def test_help_does_not_import_heavy_modules(args: list[str]) -> None:
    # the help is printed by the CLI itself, then the modules loaded by then are listed
    code = ("import sys\nfrom failover.cli import cli\n"
            f"try:\n    cli({args!r})\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pydantic', 'yaml', 'dns', 'boto3', 'httpx') if m in sys.modules]\n"
            "print('heavy:', ','.join(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, check=True)
    assert "Usage: " in r.stdout and "--help" in r.stdout  # the help was printed
    assert r.stdout.splitlines()[-1] == "heavy: "


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


def test_the_config_is_read_from_failover_config_when_no_option_names_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAILOVER_CONFIG"}
    env["FAILOVER_TSIG_SECRET"] = "c2VjcmV0"
    r = subprocess.run([sys.executable, "-m", "failover", "validate"], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=60, check=False)
    assert r.returncode == 2 and "Missing option '--config'" in r.stderr
    r = failover("validate", env={"FAILOVER_CONFIG": str(CONTRACT), "FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{CONTRACT}: ok: zone example.test.")
    # the option wins over the environment variable
    other = tmp_path / "other.yaml"
    other.write_text(CONTRACT.read_text().replace("example.test.", "other.test."))
    r = failover("validate", "--config", str(other), env={"FAILOVER_CONFIG": str(CONTRACT),
                                                         "FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0 and r.stdout.startswith(f"{other}: ok: zone other.test.")


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
    # every region answers when `regions` is left out: each one needs an AWS region too,
    # or Route 53 keeps the others' records only and a failover leaves the name empty
    implicit = text.replace(", regions: [us-east-1, eu-west-1]", "").replace(
        "us-east-1", "east")
    with pytest.raises(ConfigError) as info:
        parse_config(implicit)
    assert [(i.path, i.message) for i in info.value.issues] == [
        ("records[0].policy", "region 'east' needs aws_region for Route 53 latency records "
                              "(its name is not an AWS region)")]


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


def _with_token(tmp_path: Path, token: str | None, mode: int = 0o600) -> Path:
    """The contract with the API token read from ./token (holding `token`, unless None)."""
    config = tmp_path / "failover.yaml"
    config.write_text(CONTRACT.read_text().replace(
        "  listen: 127.0.0.1:9053", "  listen: 127.0.0.1:9053\n  token_file: ./token"))
    if token is not None:
        (tmp_path / "token").write_text(token)
        (tmp_path / "token").chmod(mode)
    return config


@pytest.mark.parametrize("token, why", [
    ("", "secret file {dir}/token is empty"),
    ("  \n\t\n", "secret file {dir}/token is empty"),
    ("short-token\n", "the API token in file ./token is 11 bytes; at least 16"),
])
def test_a_blank_or_short_api_token_is_refused_by_validate_and_run(
        tmp_path: Path, token: str, why: str) -> None:
    config = _with_token(tmp_path, token)
    env = {"FAILOVER_TSIG_SECRET": "c2VjcmV0"}
    for command in (("validate",), ("run", "--once")):
        r = failover(*command, "--config", str(config), env=env)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        assert why.format(dir=tmp_path) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_a_blank_token_env_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "failover.yaml"
    path.write_text(CONTRACT.read_text().replace(
        "  listen: 127.0.0.1:9053", "  listen: 127.0.0.1:9053\n  token_env: FAILOVER_TOKEN"))
    env = {"FAILOVER_TSIG_SECRET": "c2VjcmV0"}
    blank = failover("validate", "--config", str(path), env={**env, "FAILOVER_TOKEN": "   "})
    good = failover("validate", "--config", str(path),
                    env={**env, "FAILOVER_TOKEN": "a-token-of-32-bytes-0123456789ab"})
    assert blank.returncode == 2 and "environment variable FAILOVER_TOKEN is blank" in blank.stderr
    assert good.returncode == 0, good.stderr


def test_validate_warns_about_a_secret_file_others_can_read(tmp_path: Path) -> None:
    config = _with_token(tmp_path, "a-token-of-32-bytes-0123456789ab\n", mode=0o644)
    r = failover("validate", "--config", str(config), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0, r.stderr
    assert f"secret file {tmp_path}/token is readable by others (mode 0644)" in r.stderr
    (tmp_path / "token").chmod(0o600)
    r = failover("validate", "--config", str(config), env={"FAILOVER_TSIG_SECRET": "c2VjcmV0"})
    assert r.returncode == 0 and "readable by" not in r.stderr


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


def test_status_names_every_zone_and_each_records_zone(tmp_path: Path) -> None:
    config = tmp_path / "zones.yaml"
    config.write_text((EXAMPLES / "zones-and-pools.yaml").read_text()
                      + f"controller: {{state: {tmp_path}/failover.db}}\n")
    assert failover("run", "--once", "--config", str(config)).returncode == 0
    r = failover("status", "--no-read", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == ("zone example.test. (provider none), "
                                        "zone billing.example.test. (provider none)")
    assert "api.billing.example.test. A failover (zone billing.example.test.): " in r.stdout
    assert "pay.example.test. A weighted (zone example.test.): " in r.stdout


def test_status_says_when_every_region_is_out_and_which_endpoints_are_down(
        tmp_path: Path) -> None:
    import socket

    # one endpoint answers the TCP check; the others (same port, other addresses) do not
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = tmp_path / "out.yaml"
        config.write_text(f"""zone: example.test.
provider: {{type: none}}
checks: {{tcp: {{type: TCP, port: {port}, request_interval: 1, failure_threshold: 1}}}}
regions:
  us-east-1: {{endpoints: [{{address: 127.0.0.1, check: tcp}}, {{address: 127.0.0.2, check: tcp}}]}}
  eu-west-1: {{endpoints: [{{address: 127.0.0.3, check: tcp}}]}}
records:
  - {{name: api.example.test., type: A, policy: failover, order: [eu-west-1]}}
  - {{name: www.example.test., type: A, policy: failover, order: [us-east-1, eu-west-1]}}
controller: {{state: {tmp_path}/failover.db}}
""")
        assert failover("run", "--once", "--config", str(config)).returncode == 0
    r = failover("status", "--no-read", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert "problem: every region of api.example.test. A is out: failing open" in r.stdout
    assert "www.example.test. A" not in r.stdout.split("regions:")[0]
    assert "  us-east-1: partly healthy: us-east-1/127.0.0.2 down\n" in r.stdout
    assert "  eu-west-1: UNHEALTHY\n" in r.stdout


def test_history_says_when_its_limit_left_events_out(tmp_path: Path) -> None:
    config = tmp_path / "zones.yaml"
    config.write_text((EXAMPLES / "zones-and-pools.yaml").read_text()
                      + f"controller: {{state: {tmp_path}/failover.db}}\n")
    assert failover("run", "--once", "--config", str(config)).returncode == 0
    every = failover("history", "--config", str(config), "--since", "2h")
    assert every.returncode == 0 and every.stderr == ""
    total = len(every.stdout.splitlines())
    assert total > 3
    cut = failover("history", "--config", str(config), "--since", "2h", "--limit", "3")
    assert cut.returncode == 0 and cut.stdout.splitlines() == every.stdout.splitlines()[-3:]
    assert ("the newest 3 events shown; there are older ones since 2h: a larger --limit "
            "(or a later --since) shows them") in cut.stderr
    exact = failover("history", "--config", str(config), "--limit", str(total), "--json")
    assert len(json.loads(exact.stdout)) == total and exact.stderr == ""


def test_validate_and_plan_name_every_zone() -> None:
    config = str(EXAMPLES / "zones-and-pools.yaml")
    r = failover("validate", "--config", config)
    assert r.returncode == 0, r.stderr
    assert (": ok: zones example.test. (provider none), billing.example.test. (provider none), "
            "3 records") in r.stdout
    r = failover("plan", "--no-read", "--config", config)
    assert r.stdout.startswith("zones example.test., billing.example.test. (actual records"), \
        r.stdout
    r = failover("plan", "--no-read", "--markdown", "--config", config)
    assert r.stdout.startswith(
        "### failover plan for `example.test.`, `billing.example.test.`\n"), r.stdout
