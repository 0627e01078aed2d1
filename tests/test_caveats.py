"""What a valid config does that its author may not expect, said where people look:
weights a server cannot serve (status, /status, the page, history, validate) and names
that fail closed behind caching resolvers (validate, plan with the zone's negative TTL
read from a real named)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from failover.localdns import LocalNamed
from tests.builders import ROOT
from tests.service_env import EAST, WEST, Env, wait_for

WWW = "www.example.test."
NOTE = "equal shares: this server cannot weight"
WEIGHTED = """  - name: www.example.test.
    type: A
    ttl: 30
    policy: weighted
    weights: {us-east-1: 70, eu-west-1: 30}
"""


def failover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


def write(path: Path, provider: str, records: str, port: int = 53) -> Path:
    providers = {
        "rfc2136": f"{{type: rfc2136, server: 127.0.0.1, port: {port}, "
                   "tsig: {name: failover-key, secret_file: ./tsig.secret}}",
        "route53": "{type: route53, hosted_zone_id: Z0123456789ABCDEFGHIJ}",
    }
    path.write_text(f"""
zone: example.test.
provider: {providers[provider]}
controller: {{state: ./failover.db}}
regions:
  us-east-1: {{endpoints: [{{address: {EAST}}}]}}
  eu-west-1: {{endpoints: [{{address: {WEST}}}]}}
records:
{records}""")
    return path


# ------------------------------------------------------------------ weights not served


def test_status_page_and_history_say_a_weighted_record_is_served_in_equal_shares(
        env: Env) -> None:
    env.config.write_text(env.config.read_text() + WEIGHTED)
    env.start_controller()
    assert wait_for(lambda: env.answer(WWW) == {EAST, WEST}), env.log()
    assert wait_for(lambda: bool(env.record(WWW))), env.log()

    served = env.record(WWW)  # /status
    assert served["shares"] == {"us-east-1": 0.5, "eu-west-1": 0.5}
    assert served["policy_shares"] == {"us-east-1": 0.7, "eu-west-1": 0.3}
    assert served["shares_note"] == NOTE
    with urllib.request.urlopen(f"http://127.0.0.1:{env.api_port}/", timeout=5) as r:
        page = r.read().decode()
    row = next(line for line in page.splitlines() if f"<td data-l=name>{WWW}<td" in line)
    assert NOTE in row and "us-east-1 50%, eu-west-1 50%" in row

    data = json.loads(env.cli("status", "--json").stdout)
    [www] = [r for r in data["records"] if r["name"] == WWW]
    assert www["shares"] == {"us-east-1": 0.5, "eu-west-1": 0.5} and www["shares_note"] == NOTE
    text = env.cli("status").stdout
    assert f"served us-east-1 50%, eu-west-1 50% ({NOTE})" in text
    history = env.cli("history").stdout
    assert any(WWW in line and NOTE in line for line in history.splitlines()), history


def test_validate_warns_about_weights_on_rfc2136_but_not_on_route53(tmp_path: Path) -> None:
    (tmp_path / "tsig.secret").write_text("c2VjcmV0c2VjcmV0c2VjcmV0\n")
    r = failover("validate", "--config", str(write(tmp_path / "bind.yaml", "rfc2136", WEIGHTED)))
    assert r.returncode == 0, r.stderr
    assert f"warning: weights not served for {WWW} A (zone example.test., provider rfc2136): " \
        f"{NOTE}" in r.stderr
    r = failover("validate", "--config", str(write(tmp_path / "r53.yaml", "route53", WEIGHTED)))
    assert r.returncode == 0, r.stderr
    assert "cannot weight" not in r.stderr
    equal = WEIGHTED.replace("us-east-1: 70, eu-west-1: 30", "us-east-1: 5, eu-west-1: 5")
    r = failover("validate", "--config", str(write(tmp_path / "even.yaml", "rfc2136", equal)))
    assert r.returncode == 0 and "cannot weight" not in r.stderr, r.stderr


def test_weights_in_a_route53_zone_with_networks_are_said_to_be_served_in_equal_shares(
        tmp_path: Path) -> None:
    from failover.caveats import weight_warnings
    from failover.config import load_config

    path = write(tmp_path / "r53.yaml", "route53", WEIGHTED)
    assert weight_warnings(load_config(path)) == []
    path.write_text(path.read_text() + "networks:\n  europe: {route53: {continent: EU}}\n"
                    "  default: {}\n")
    [warning] = weight_warnings(load_config(path))
    assert warning.startswith(f"weights not served for {WWW} A (zone example.test., provider "
                              "route53 with networks): equal shares: a geolocation record "
                              "holds one answer. Each network's answer is one geolocation "
                              "record set")
    assert "us-east-1 70, eu-west-1 30" in warning


# --------------------------------------------------------------------- fail_mode closed

CLOSED = """  - {name: api.example.test., type: A, ttl: 30, policy: failover,
     order: [us-east-1, eu-west-1], fail_mode: closed}
"""
OPEN = CLOSED.replace("closed", "open")


def test_validate_warns_that_a_closed_record_stays_empty_behind_resolvers(
        tmp_path: Path) -> None:
    (tmp_path / "tsig.secret").write_text("c2VjcmV0c2VjcmV0c2VjcmV0\n")
    r = failover("validate", "--config", str(write(tmp_path / "c.yaml", "rfc2136", CLOSED)))
    assert r.returncode == 0, r.stderr
    assert "warning: fail_mode closed: api.example.test. A (zone example.test.)" in r.stderr
    assert "the zone's negative TTL (its SOA MINIMUM" in r.stderr
    r = failover("validate", "--config", str(write(tmp_path / "o.yaml", "rfc2136", OPEN)))
    assert r.returncode == 0 and "fail_mode closed" not in r.stderr, r.stderr


def set_soa_ttl(named: LocalNamed, ttl: int) -> None:
    """Serve the zone's SOA with another TTL (an RFC 2136 update, the serial moved on)."""
    zone = named.dynamic_zone
    soa = dns.query.udp(dns.message.make_query(zone, "SOA"), "127.0.0.1", port=named.port,
                        timeout=2).answer[0][0]
    upd = dns.update.UpdateMessage(zone, keyring=dns.tsigkeyring.from_text(
        {named.tsig_name: named.tsig_secret}))
    upd.replace("@", ttl, soa.replace(serial=soa.serial + 1))
    assert dns.query.tcp(upd, "127.0.0.1", port=named.port, timeout=2).rcode() == 0


def test_plan_reads_the_negative_ttl_of_a_zone_with_closed_records(named: LocalNamed,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "tsig.secret").write_text(named.tsig_secret)
    config = write(tmp_path / "f.yaml", "rfc2136", CLOSED, port=named.port)
    r = failover("plan", "--config", str(config))
    assert r.returncode == 2, r.stdout + r.stderr  # changes pending, not an error
    # the test zone's SOA: MINIMUM 60 s, TTL 300 s ($TTL): resolvers keep "no answer" 60 s
    assert ("negative TTL (60 s: the smaller of its SOA MINIMUM 60 s and SOA TTL 300 s), "
            "so clients behind them stay without an answer up to 60 s") in r.stderr
    set_soa_ttl(named, 20)
    r = failover("plan", "--config", str(config), "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    [warning] = json.loads(r.stdout)["warnings"]
    assert "negative TTL (20 s: the smaller of its SOA MINIMUM 60 s and SOA TTL 20 s)" \
        in warning
    r = failover("plan", "--config", str(write(tmp_path / "o.yaml", "rfc2136", OPEN,
                                               port=named.port)))
    assert r.returncode == 2 and "fail_mode closed" not in r.stderr, r.stderr
