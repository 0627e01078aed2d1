"""Many records, several zones, pools: the controller end to end with real named.

The figures (failover time against zone size) are in bench/scale.py; these tests check
the behaviour a user relies on: a large write never blocks a failover, several zones
and pools are written where they belong.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from failover.localdns import LocalNamed
from tests.builders import EXAMPLES, ROOT
from tests.service_env import CHECKS_AND_REGIONS, EAST, WEST, Env, a_values, wait_for

EAST_BILLING, WEST_BILLING = "127.0.1.2", "127.0.2.2"


def answer(port: int, name: str) -> set[str] | None:
    """The A values one name has at the named on `port`; None when it does not exist."""
    return a_values(port, name)


def zone_a_records(named: LocalNamed) -> dict[str, set[str]]:
    """Every A record set of the named's dynamic zone but its NS host's, read whole (AXFR
    with its key)."""
    import dns.xfr
    import dns.zone

    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    zone = dns.zone.Zone(named.dynamic_zone)
    query, _ = dns.xfr.make_query(zone, keyring=keyring, keyname=named.tsig_name,
                                  keyalgorithm=dns.tsig.HMAC_SHA256)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=named.port, timeout=10)
    return {name.derelativize(zone.origin).to_text(): {rd.to_text() for rd in rds}
            for name, node in zone.nodes.items() for rds in node.rdatasets
            if rds.rdtype == dns.rdatatype.A and name.to_text() != "ns1"}  # the zone's own


def bulk_config(env: Env, n: int) -> None:
    """The service config plus `n` records answered by a region pool without checks, so
    the first write is large while api stays the only record that fails over."""
    text = env.config.read_text().replace("failure_threshold: 2", "failure_threshold: 1")
    pools = ("pools:\n  bulk:\n    us-east-1: [{address: 127.0.1.9}]\n"
             "    eu-west-1: [{address: 127.0.2.9}]\n")
    text = text.replace("records:\n", pools + "records:\n", 1)
    text += "".join(f"  - {{name: b{i}.example.test., type: A, ttl: 60, policy: failover, "
                    f"order: [us-east-1, eu-west-1], pool: bulk}}\n" for i in range(n))
    env.config.write_text(text)


def test_a_failover_during_a_large_first_write_is_served_before_it_completes(env: Env) -> None:
    n = 20000  # 40,000 record sets with their markers: ten chunks, many messages
    bulk_config(env, n)
    env.start_controller()
    port = env.named.port
    # the first write is bulk work (first-time creates): kill the primary once it began
    assert wait_for(lambda: answer(port, "b0.example.test.") is not None, timeout=60), env.log()
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=30, step=0.02), env.log()
    assert wait_for(lambda: answer(port, f"b{n - 1}.example.test.") == {"127.0.1.9"},
                    timeout=120), env.log()
    log = env.log()
    assert "Traceback" not in log and "TooBig" not in log
    assert env.answer() == {WEST}
    # The failover goes ahead of the bulk work left: once the controller saw the region
    # fail, named applied at most the chunk then in flight before the failover. It holds
    # whether the failure came early in the bulk write or after its end (a fast machine):
    # read from named's update log and the controller's, both stamped by the wall clock
    failed_at = next(_stamp(line, "%Y-%m-%d %H:%M:%S,%f") for line in log.splitlines()
                     if "event=health endpoint=us-east-1/" in line and "healthy=False" in line)
    chunk = max(int(c) for c in re.findall(r"event=dns_applied .*?changes=(\d+)", log))
    late = 0
    for line in env.named.log().splitlines():
        if "adding an RR at 'api.example.test' A 127.0.2.1" in line:
            break
        if BULK_ADD.search(line) and _stamp(line, "%d-%b-%Y %H:%M:%S.%f") > failed_at:
            late += 1
    else:
        raise AssertionError("named's log has no update serving the failover")
    assert late <= chunk, f"{late} bulk records written after the failure was seen"


BULK_ADD = re.compile(r"adding an RR at '(_failover\.)?b\d+\.example\.test'")


def _stamp(line: str, form: str) -> float:
    """The time a log line starts with (`form`: strptime's), in seconds."""
    return datetime.strptime(" ".join(line.split()[:2]), form).timestamp()


@pytest.fixture
def second_named(tmp_path: Path) -> Iterator[LocalNamed]:
    """Another private named, primary for second.test."""
    server = LocalNamed.start(tmp_path / "named2", dynamic_zone="second.test.",
                              file_zone="files2.test.")
    try:
        yield server
    finally:
        server.stop()


TWO_ZONES = """
zones:
  - zone: example.test.
    provider: {{type: bind, server: 127.0.0.1, port: {port1},
               tsig: {{name: failover-key, secret_file: ./tsig.secret}}}}
  - zone: second.test.
    provider: {{type: bind, server: 127.0.0.1, port: {port2},
               tsig: {{name: failover-key, secret_file: ./tsig2.secret}}}}
controller: {{state: ./failover.db, listen: "127.0.0.1:{api_port}"}}
""" + CHECKS_AND_REGIONS + """pools:
  billing:
    us-east-1: [{{address: {east_billing}, check: web}}]
    eu-west-1: [{{address: {west_billing}, check: web}}]
records:
  - {{name: api.example.test., type: A, ttl: 30, policy: failover,
     order: [us-east-1, eu-west-1]}}
  - {{name: billing.example.test., type: A, ttl: 30, policy: failover,
     order: [us-east-1, eu-west-1], pool: billing}}
  - {{name: api.second.test., type: A, ttl: 30, policy: failover,
     order: [us-east-1, eu-west-1]}}
  - {{name: billing.second.test., type: A, ttl: 30, policy: failover,
     order: [us-east-1, eu-west-1], pool: billing}}
"""


def test_two_zones_and_a_pool_in_one_config(env: Env, second_named: LocalNamed) -> None:
    (env.dir / "tsig2.secret").write_text(second_named.tsig_secret)
    env.config.write_text(TWO_ZONES.format(
        port1=env.named.port, port2=second_named.port, api_port=env.api_port,
        http_port=env.http_port, east=EAST, west=WEST, east_billing=EAST_BILLING,
        west_billing=WEST_BILLING))
    assert env.cli("validate").returncode == 0, env.cli("validate").stderr
    env.start_region(EAST_BILLING)
    env.start_region(WEST_BILLING)
    env.start_controller()
    p1, p2 = env.named.port, second_named.port
    assert wait_for(lambda: answer(p1, "billing.example.test.") == {EAST_BILLING}
                    and answer(p2, "billing.second.test.") == {EAST_BILLING}
                    and answer(p2, "api.second.test.") == {EAST}, timeout=30), env.log()
    # each zone's records live on its own server, and nothing else of ours is there
    assert zone_a_records(env.named) == {"api.example.test.": {EAST},
                                         "billing.example.test.": {EAST_BILLING}}
    assert zone_a_records(second_named) == {"api.second.test.": {EAST},
                                            "billing.second.test.": {EAST_BILLING}}
    # the billing pool's east endpoint fails: billing moves, api (the region's own) stays
    env.stop_region(EAST_BILLING)
    assert wait_for(lambda: answer(p1, "billing.example.test.") == {WEST_BILLING}
                    and answer(p2, "billing.second.test.") == {WEST_BILLING},
                    timeout=20), env.log()
    assert answer(p1, "api.example.test.") == {EAST}
    assert answer(p2, "api.second.test.") == {EAST}
    status = env.status()
    east = {e["id"]: e for e in status["regions"]["us-east-1"]["endpoints"]}
    assert east[f"us-east-1/billing/{EAST_BILLING}"]["healthy"] is False
    assert east[f"us-east-1/billing/{EAST_BILLING}"]["pool"] == "billing"
    assert east[f"us-east-1/{EAST}"]["healthy"] is True
    assert {z["zone"] for z in status["zones"]} == {"example.test.", "second.test."}
    billing = next(r for r in status["records"] if r["name"] == "billing.second.test.")
    assert billing["pool"] == "billing" and billing["zone"] == "second.test."
    history = env.cli("history").stdout
    assert f"us-east-1/billing/{EAST_BILLING} is unhealthy" in history


def test_a_record_too_large_for_one_message_is_named_and_blocks_nothing(env: Env) -> None:
    # 6,000 IPv4 endpoints in one region: one A record set of 6,000 values (> 64 KiB)
    text = env.config.read_text()
    east = "".join(f"      - {{address: 127.3.{i // 250}.{i % 250 + 1}}}\n" for i in range(6000))
    text = text.replace(f"  us-east-1: {{endpoints: [{{address: {EAST}, check: web}}]}}\n",
                        f"  us-east-1: {{endpoints: [{{address: {EAST}, check: web}}]}}\n"
                        "  huge:\n    endpoints:\n" + east)
    text += ("  - {name: huge.example.test., type: A, ttl: 30, policy: weighted,"
             " weights: {huge: 1}}\n")
    env.config.write_text(text)
    env.start_controller()
    assert wait_for(lambda: env.answer() == {EAST}, timeout=30), env.log()
    assert wait_for(lambda: "huge.example.test. not written" in env.cli("history").stdout,
                    timeout=20), env.log()
    assert "more than one UPDATE message holds" in env.cli("history").stdout
    assert answer(env.named.port, "huge.example.test.") is None
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()


def test_provider_none_with_zones_and_pools_runs_once(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text((EXAMPLES / "zones-and-pools.yaml").read_text()
                   + "controller: {state: ./failover.db}\n")
    r = subprocess.run([sys.executable, "-m", "failover", "run", "--once", "--config", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    # each record was decided, with its pool's endpoints, in the zone of its longest suffix
    status = subprocess.run([sys.executable, "-m", "failover", "status", "--json", "--config",
                             str(cfg)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True)
    records = {r["name"]: r for r in json.loads(status.stdout)["records"]}
    assert {n: (r["zone"], r["desired"]) for n, r in records.items()} == {
        "api.example.test.": ("example.test.", ["127.0.1.1"]),
        "api.billing.example.test.": ("billing.example.test.", ["127.0.1.2", "127.0.1.3"]),
        "pay.example.test.": ("example.test.", ["127.0.1.2", "127.0.1.3", "127.0.2.2"])}
    history = subprocess.run([sys.executable, "-m", "failover", "history", "--config", str(cfg)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             check=True).stdout
    assert "first probe round complete" in history
    assert all(f"decision   {n} A:" in history for n in records), history


def test_a_hand_edit_is_corrected_at_the_next_refresh(env: Env) -> None:
    env.config.write_text(env.config.read_text().replace(
        "  state: ./failover.db\n", "  state: ./failover.db\n  refresh: 1\n"))
    env.start_controller()
    assert wait_for(lambda: env.answer() == {EAST}, timeout=30), env.log()
    # someone edits the managed record by hand (the marker stays): the serial moves, the
    # background reading finds the difference, and the answer is put back
    keyring = dns.tsigkeyring.from_text({env.named.tsig_name: env.named.tsig_secret})
    upd = dns.update.UpdateMessage("example.test.", keyring=keyring,
                                   keyalgorithm=dns.tsig.HMAC_SHA256)
    upd.replace("api", 30, "A", "127.0.9.9")
    assert dns.query.tcp(upd, "127.0.0.1", port=env.named.port, timeout=5).rcode() == 0
    assert env.answer() == {"127.0.9.9"}
    assert wait_for(lambda: env.answer() == {EAST}, timeout=30), env.log()
    assert "(bulk)" in env.cli("history").stdout
