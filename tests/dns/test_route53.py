"""The Route 53 adapter: native routing records, limits, throttling; moto in-process and
moto_server on loopback."""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from failover import plan
from failover.config import Route53Provider, parse_config
from failover.dns.base import DnsConflict, DnsRejected
from failover.dns.ownership import marker_value
from failover.dns.route53 import RateLimiter, Route53Adapter
from failover.dns.route53_records import MAX_ELEMENTS, batches
from failover.errors import FailoverError
from failover.health import assume_regions, initial_snapshot
from failover.localdns import free_port
from failover.reconcile import plan_step, read_actual
from failover.records import RecordSet
from policies import Overrides
from tests import moto_fixes
from tests.builders import EXAMPLES, ROOT

moto_fixes.install()

R = RecordSet.make
RECORDS = """
  - name: api.example.test.
    type: A
    ttl: 60
    policy: failover
    order: [us-east-1, eu-west-1, ap-southeast-2]
  - name: app.example.test.
    type: A
    ttl: 60
    policy: latency
"""


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def zone() -> Iterator[str]:
    with mock_aws():
        client = boto3.client("route53", region_name="us-east-1")
        zid = client.create_hosted_zone(Name="example.test.", CallerReference=str(time.time()))
        yield zid["HostedZone"]["Id"].split("/")[-1]


def config(zone_id: str, endpoint: str | None = None, records: str = RECORDS) -> Any:
    """The weighted example (www, static) with `records` added (api, app)."""
    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone_id)
    text = text.replace("  endpoint_url: http://127.0.0.1:5055\n",
                        f"  endpoint_url: {endpoint}\n" if endpoint else "")
    return parse_config(text + records)


def sync(cfg: Any, adapter: Route53Adapter, down: tuple[str, ...] = ()) -> plan.ChangeSet:
    actual = read_actual(cfg, adapter)
    snap = assume_regions(initial_snapshot(cfg, 0), cfg, {r: False for r in down}, 1)
    step = plan_step(cfg, snap, Overrides(), {}, 1, actual, native=True)
    adapter.apply(step.changes, actual)
    return step.changes


def records(adapter: Route53Adapter, name: str) -> dict[str | None, RecordSet]:
    return {rs.set_identifier: rs for rs in adapter.read({(name, "A")})}


def test_native_records_for_each_policy_and_a_failover(zone: str) -> None:
    cfg = config(zone)
    a = Route53Adapter(cfg.zone, cfg.provider)
    sync(cfg, a)
    api = records(a, "api.example.test.")
    assert (api["primary"].failover, api["primary"].values) == ("PRIMARY", ("127.0.1.1",))
    assert (api["secondary"].failover, api["secondary"].values) == ("SECONDARY", ("127.0.2.1",))
    www = records(a, "www.example.test.")
    assert {k: v.weight for k, v in www.items()} == {"us-east-1": 70, "eu-west-1": 30}
    app = records(a, "app.example.test.")
    assert {k: v.region for k, v in app.items()} == {
        "us-east-1": "us-east-1", "eu-west-1": "eu-west-1", "ap-southeast-2": "ap-southeast-2"}
    # us-east-1 fails: PRIMARY moves, its weighted and latency records go
    sync(cfg, a, down=("us-east-1",))
    api = records(a, "api.example.test.")
    assert api["primary"].values == ("127.0.2.1",) and api["secondary"].values == ("127.0.5.1",)
    assert set(records(a, "www.example.test.")) == {"eu-west-1"}
    assert set(records(a, "app.example.test.")) == {"eu-west-1", "ap-southeast-2"}
    # nothing left to do
    actual = read_actual(cfg, a)
    snap = assume_regions(initial_snapshot(cfg, 0), cfg, {"us-east-1": False}, 1)
    assert not plan_step(cfg, snap, Overrides(), {}, 1, actual, native=True).changes
    # and back: the same record sets are created again
    sync(cfg, a)
    assert records(a, "api.example.test.")["primary"].values == ("127.0.1.1",)
    assert set(records(a, "www.example.test.")) == {"us-east-1", "eu-west-1"}


def test_zero_weight_region_answers_when_every_weighted_one_is_out() -> None:
    with mock_aws():
        client = boto3.client("route53", region_name="us-east-1")
        zid = client.create_hosted_zone(Name="example.test.", CallerReference="zero")
        cfg = config(zid["HostedZone"]["Id"].split("/")[-1])
        a = Route53Adapter(cfg.zone, cfg.provider)
        sync(cfg, a, down=("us-east-1", "eu-west-1"))
        www = records(a, "www.example.test.")
        assert {k: v.weight for k, v in www.items()} == {"ap-southeast-2": 0}


def test_invalid_changes_are_refused_before_any_call(zone: str) -> None:
    cfg = config(zone)
    a = Route53Adapter(cfg.zone, cfg.provider)
    keys = {("x.example.test.", "A")}
    bad = [R("x.example.test.", "A", 60, ["127.0.0.1"], set_identifier="a", weight=300),
           R("x.example.test.", "A", 60, ["127.0.0.2"], set_identifier="a", weight=1)]
    with pytest.raises(DnsRejected) as info:
        a.apply(plan.diff(bad[:1], [], keys), [])
    assert "weight 300 outside 0-255" in str(info.value)
    mixed = [R("x.example.test.", "A", 60, ["127.0.0.1"], set_identifier="a", weight=1),
             R("x.example.test.", "A", 60, ["127.0.0.2"], set_identifier="b", region="mars-1")]
    with pytest.raises(DnsRejected, match="mixes routing policies"):
        a.apply(plan.diff(mixed, [], keys), [])
    two_primaries = [R("x.example.test.", "A", 60, ["127.0.0.1"], set_identifier="a",
                       failover="PRIMARY"),
                     R("x.example.test.", "A", 60, ["127.0.0.2"], set_identifier="b",
                       failover="PRIMARY")]
    with pytest.raises(DnsRejected, match="one PRIMARY"):
        a.apply(plan.diff(two_primaries, [], keys), [])
    assert a.stats.calls == 0


class Throttling:
    """A client that answers Throttling / PriorRequestNotComplete to the first writes."""

    def __init__(self, client: Any, failures: int) -> None:
        self.client = client
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != "change_resource_record_sets":
            return real

        def call(**kwargs: Any) -> Any:
            if self.failures > 0:
                self.failures -= 1
                code = "Throttling" if self.failures % 2 else "PriorRequestNotComplete"
                raise ClientError({"Error": {"Code": code, "Message": "slow down"}},
                                  "ChangeResourceRecordSets")
            return real(**kwargs)

        return call


def test_throttling_is_ridden_out_without_losing_a_change(zone: str) -> None:
    cfg = config(zone)
    client = Throttling(boto3.client("route53", region_name="us-east-1"), failures=4)
    a = Route53Adapter(cfg.zone, cfg.provider, client=client)
    changes = sync(cfg, a)
    assert a.stats.retries == 4 and client.failures == 0
    assert {(r.name, r.set_identifier) for r in a.read(changes.managed)} == {
        (c.record.name, c.record.set_identifier) for c in changes.changes}


def test_2500_records_fail_over_in_the_fewest_calls(zone: str) -> None:
    prov = Route53Provider(type="route53", hosted_zone_id=zone, max_requests_per_second=5)
    a = Route53Adapter("example.test.", prov)
    keys = {(f"r{i}.example.test.", "A") for i in range(2500)}
    names = sorted(n for n, _ in keys)

    def primaries(last: int) -> list[RecordSet]:
        return [R(n, "A", 60, [f"127.0.{last}.1"], set_identifier="primary", failover="PRIMARY")
                for n in names]

    first = plan.diff(primaries(1), [], keys)
    a.apply(first, [])
    assert a.stats.change_batches == math.ceil(2500 / MAX_ELEMENTS)
    actual = a.read(keys)
    before = a.stats.change_batches
    failover = plan.diff(primaries(2), actual, keys)
    assert failover.count("upsert") == 2500
    a.apply(failover, actual)
    # each replacement is DELETE + CREATE: 2 elements, 5,000 in all: 5 batches of 1,000
    assert a.stats.change_batches - before == 5
    assert all(len(b) <= MAX_ELEMENTS // 2 for b in batches(failover.changes))
    assert {r.values for r in a.read(keys)} == {("127.0.2.1",)}


def test_a_two_region_failover_changes_primary_alone(zone: str) -> None:
    cfg = parse_config((EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone).replace("  endpoint_url: http://127.0.0.1:5055\n", "")
        + "  - {name: two.example.test., type: A, ttl: 60, policy: failover,"
          " order: [us-east-1, eu-west-1]}\n")
    a = Route53Adapter(cfg.zone, cfg.provider)
    sync(cfg, a)
    before = records(a, "two.example.test.")
    changes = sync(cfg, a, down=("us-east-1",))
    two = [c for c in changes.changes if c.record.name == "two.example.test."]
    # PRIMARY moves to eu-west-1; SECONDARY already holds eu-west-1 and stays: one change
    assert [(c.action, c.record.set_identifier) for c in two] == [("upsert", "primary")]
    after = records(a, "two.example.test.")
    assert after["primary"].values == before["secondary"].values == after["secondary"].values


def test_a_few_names_are_read_back_without_listing_the_zone(zone: str) -> None:
    prov = Route53Provider(type="route53", hosted_zone_id=zone, max_requests_per_second=5)
    a = Route53Adapter("example.test.", prov)
    keys = {(f"r{i}.example.test.", "A") for i in range(1500)}
    a.apply(plan.diff([R(n, "A", 60, ["127.0.1.1"]) for n, _ in keys], [], keys), [])
    actual = a.read(keys)  # the full listing: 1,500 record sets (and NS, SOA) in 6 pages
    calls = a.stats.calls
    one = {("r7.example.test.", "A")}
    before = [rs for rs in actual if (rs.name, rs.type) in one]
    a.apply(plan.diff([R("r7.example.test.", "A", 60, ["127.0.2.1"])], before, one), before)
    # one change batch and one read of the changed name to confirm it, not 6 pages
    assert a.stats.calls - calls == 2
    assert [rs.values for rs in a.read(one)] == [("127.0.2.1",)]
    assert {rs.name for rs in a.read({("r7.example.test.", "A"), ("r70.example.test.", "A")})} == {
        "r7.example.test.", "r70.example.test."}


def test_a_name_removed_from_the_config_is_found_by_the_listing_and_deleted(zone: str) -> None:
    cfg = config(zone)
    sync(cfg, Route53Adapter(cfg.zone, cfg.provider))
    client = boto3.client("route53", region_name="us-east-1")
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": rtype, "TTL": 60, "ResourceRecords": [{"Value": value}]}}
        for name, rtype, value in [
            ("theirs.example.test.", "A", "127.0.7.7"),
            ("_failover.theirs.example.test.", "TXT", '"heritage=failover,owner=west"')]]})
    app = "app.example.test."
    assert set(records(Route53Adapter(cfg.zone, cfg.provider), app)) == {
        "us-east-1", "eu-west-1", "ap-southeast-2"}
    # app leaves the config; a reload makes a new adapter, whose first read lists the zone
    kept = RECORDS.split("  - name: app")[0]
    smaller = config(zone, records=kept)
    a = Route53Adapter(smaller.zone, smaller.provider)
    actual = read_actual(smaller, a)
    snap = initial_snapshot(smaller, 0)
    step = plan_step(smaller, snap, Overrides(), {}, 1, actual, native=True)
    # its three latency record sets and its marker: 4 of 13, more than the default 30%
    assert step.pruned == [app] and step.violations[0].startswith("4 of 13 managed record")
    smaller = config(zone, records=kept + "plan: {max_delete_share: 0.5}\n")
    step = plan_step(smaller, snap, Overrides(), {}, 1, actual, native=True)
    assert step.pruned == [app] and not step.violations
    assert {(c.action, c.record.name, c.record.set_identifier) for c in step.changes.changes} == {
        ("delete", app, "us-east-1"), ("delete", app, "eu-west-1"),
        ("delete", app, "ap-southeast-2"), ("delete", f"_failover.{app}", None)}
    a.apply(step.changes, actual)
    assert records(a, app) == {} and a.read({(f"_failover.{app}", "TXT")}) == []
    assert [rs.values for rs in a.read({("theirs.example.test.", "A")})] == [("127.0.7.7",)]
    assert not plan_step(smaller, snap, Overrides(), {}, 1, read_actual(smaller, a),
                         native=True).changes


def test_reads_by_name_find_no_removed_names_and_say_so_once(
        zone: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(zone, records="")  # www and static: 4 names with their markers
    a = Route53Adapter(cfg.zone, cfg.provider)
    keys = {(f"r{i}.example.test.", "A") for i in range(1500)}  # 6 pages of records
    a.apply(plan.diff([R(n, "A", 60, ["127.0.1.1"]) for n, _ in keys], [], keys), [])
    old = [R("old.example.test.", "A", 60, ["127.0.6.6"]),
           R("_failover.old.example.test.", "TXT", 60, [marker_value("failover")])]
    a.apply(plan.diff(old, [], {(rs.name, rs.type) for rs in old}), [])
    started = Route53Adapter(cfg.zone, cfg.provider)
    assert set(old) <= set(read_actual(cfg, started))  # the first read lists the zone
    with caplog.at_level(logging.WARNING):
        assert not set(old) & set(read_actual(cfg, started))  # then 4 names are read by name
        read_actual(cfg, started)
    assert caplog.text.count("event=orphans_not_listed") == 1


def test_a_concurrent_edit_is_not_overwritten(zone: str) -> None:
    cfg = config(zone)
    a = Route53Adapter(cfg.zone, cfg.provider)
    sync(cfg, a)
    stale = read_actual(cfg, a)
    client = boto3.client("route53", region_name="us-east-1")
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": "api.example.test.", "Type": "A", "TTL": 60, "SetIdentifier": "primary",
            "Failover": "PRIMARY", "ResourceRecords": [{"Value": "127.0.9.9"}]}}]})
    snap = assume_regions(initial_snapshot(cfg, 0), cfg, {"us-east-1": False}, 1)
    step = plan_step(cfg, snap, Overrides(), {}, 1, stale, native=True)
    with pytest.raises(DnsConflict):
        a.apply(step.changes, stale)
    sync(cfg, a, down=("us-east-1",))  # re-read, re-plan: converges
    assert records(a, "api.example.test.")["primary"].values == ("127.0.2.1",)


class FakeClock:
    """Seconds that pass only when the rate limiter sleeps: no wall clock in the test."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[float] = []  # when each call was let through

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds

    def limiter(self, rate: float) -> RateLimiter:
        clock = self

        class Counting(RateLimiter):
            def acquire(self) -> None:
                super().acquire()
                clock.calls.append(round(clock.now, 9))

        return Counting(rate, clock=lambda: self.now, sleep=self.sleep)


def in_any_window(times: list[float], seconds: float) -> int:
    """The most calls let through within `seconds` of one another."""
    return max(sum(1 for u in times if t <= u < t + seconds) for t in times)


def test_the_request_budget_lets_a_seconds_worth_through_then_one_call_per_fifth_second(
        ) -> None:
    clock = FakeClock()
    limiter = clock.limiter(5)
    for _ in range(20):
        limiter.acquire()
    assert clock.calls == [0.0] * 5 + [round(0.2 * i, 9) for i in range(1, 16)]
    # a long idle refills the bucket to one second's worth, never more
    clock.now += 60
    for _ in range(7):
        limiter.acquire()
    assert clock.calls[20:] == [63.0] * 5 + [63.2, 63.4]
    # over any window of T seconds no more than 5 + 5 T calls (the burst, then the rate)
    assert in_any_window(clock.calls, 1.0) == 5 + 4
    assert in_any_window(clock.calls, 2.0) == 5 + 9


def test_every_route53_call_spends_the_budget(zone: str) -> None:
    cfg = config(zone)
    a = Route53Adapter(cfg.zone, cfg.provider)
    clock = FakeClock()
    a.limiter = clock.limiter(cfg.provider.max_requests_per_second)
    assert cfg.provider.max_requests_per_second == 5  # the default: Route 53's own limit
    sync(cfg, a)
    sync(cfg, a, down=("us-east-1",))
    assert a.stats.calls == len(clock.calls) > 5
    assert clock.now == pytest.approx((a.stats.calls - 5) / 5)  # 5 at once, then 5 a second
    assert in_any_window(clock.calls, 1.0) <= 10


def long_cnames(n: int, chars: int = 200) -> list[RecordSet]:
    target = ("a" * 49 + ".") * (chars // 50)  # `chars` characters, a fully qualified name
    assert len(target) == chars
    return [R(f"c{i:03d}.example.test.", "CNAME", 60, [target]) for i in range(n)]


def test_a_batch_holds_at_most_32000_characters(zone: str) -> None:
    # 160 targets of 200 characters are exactly 32,000: one call; one more is a second
    for n, calls in ((160, 1), (161, 2), (320, 2), (321, 3)):
        changes = plan.diff(long_cnames(n), [], {(f"c{i:03d}.example.test.", "CNAME")
                                                 for i in range(n)}).changes
        assert [len(b) for b in batches(changes)] == [160] * (n // 160) + (
            [n % 160] if n % 160 else [])
        assert len(batches(changes)) == calls
    # a fenced batch leaves room for the fence: 512 characters less, 157 targets
    changes = plan.diff(long_cnames(320), [], {(f"c{i:03d}.example.test.", "CNAME")
                                               for i in range(320)}).changes
    assert [len(b) for b in batches(changes, fenced=True)] == [157, 157, 6]
    # a replacement costs its old value and its new one: 80 per batch
    keys = {(f"c{i:03d}.example.test.", "CNAME") for i in range(161)}
    moved = [R(rs.name, "CNAME", 60, ["b" + rs.values[0][1:]]) for rs in long_cnames(161)]
    replace = plan.diff(moved, long_cnames(161), keys).changes
    assert [len(b) for b in batches(replace)] == [80, 80, 1]
    # and against Route 53: as many calls as batches
    a = Route53Adapter("example.test.", Route53Provider(type="route53", hosted_zone_id=zone))
    a.apply(plan.diff(long_cnames(161), [], keys), [])
    assert a.stats.change_batches == 2
    assert len(a.read(keys)) == 161


# ------------------------------------------------------------- moto_server end to end

@pytest.fixture
def moto_server(tmp_path: Path) -> Iterator[str]:
    yield from _moto_server(tmp_path, [sys.executable, str(ROOT / "tests" / "moto_fixes.py")])


@pytest.fixture
def plain_moto_server(tmp_path: Path) -> Iterator[str]:
    """moto_server as users run it (docs: the local target), its quirks included."""
    yield from _moto_server(tmp_path, [str(Path(sys.executable).parent / "moto_server")])


def _moto_server(tmp_path: Path, command: list[str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=(tmp_path / "moto.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("route53", endpoint_url=url).list_hosted_zones()
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp_path / "moto.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_plan_and_run_once_against_moto_server(moto_server: str, tmp_path: Path) -> None:
    client = boto3.client("route53", endpoint_url=moto_server)
    zid = client.create_hosted_zone(Name="example.test.", CallerReference="e2e")
    zone_id = zid["HostedZone"]["Id"].split("/")[-1]
    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone_id).replace("http://127.0.0.1:5055", moto_server)
    text = text.replace("check: web", "check: none-needed").replace(
        "checks:\n  web:", "checks:\n  none-needed:")
    cfg = tmp_path / "f.yaml"
    cfg.write_text(text.replace("  state:", "  state:") + "controller:\n  state: ./f.db\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "failover", *args, "--config", str(cfg)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    first = cli("plan")
    assert first.returncode == 2, first.stdout + first.stderr
    assert "weight=70" in first.stdout
    run = cli("run", "--once")
    assert run.returncode == 0, run.stderr
    again = cli("plan")
    assert again.returncode == 0, again.stdout + again.stderr
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert {(s["Name"], s.get("SetIdentifier"), s.get("Weight")) for s in sets
            if s["Type"] == "A"} == {
        ("www.example.test.", "us-east-1", 70), ("www.example.test.", "eu-west-1", 30),
        ("static.example.test.", "us-east-1", 0), ("static.example.test.", "eu-west-1", 0)}


PLAIN = """zone: example.test.
provider: {{type: route53, hosted_zone_id: {zone_id}, endpoint_url: {url}}}
controller: {{state: ./f.db}}
regions:
  us-east-1: {{endpoints: [{{address: 127.0.1.1}}, {{address: "fd00:1::1"}}]}}
  eu-west-1: {{endpoints: [{{address: 127.0.2.1}}, {{address: "fd00:2::1"}}]}}
records:
  - {{name: api.example.test., type: A, policy: failover, order: [us-east-1, eu-west-1]}}
  - {{name: api.example.test., type: AAAA, policy: failover, order: [us-east-1, eu-west-1]}}
  - {{name: www.example.test., type: A, policy: weighted, weights: {{us-east-1: 70, eu-west-1: 30}}}}
  - {{name: fast.example.test., type: A, policy: latency}}
"""


def test_fail_over_and_back_on_plain_moto_server(plain_moto_server: str, tmp_path: Path) -> None:
    client = boto3.client("route53", endpoint_url=plain_moto_server)
    zid = client.create_hosted_zone(Name="example.test.", CallerReference="plain")
    zone_id = zid["HostedZone"]["Id"].split("/")[-1]
    cfg = tmp_path / "f.yaml"
    cfg.write_text(PLAIN.format(zone_id=zone_id, url=plain_moto_server))

    def served() -> dict[tuple[str, str, str | None], list[str]]:
        sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        return {(s["Name"], s["Type"], s.get("SetIdentifier")): sorted(
            r["Value"] for r in s.get("ResourceRecords", [])) for s in sets
            if s["Type"] in ("A", "AAAA")}

    def run_once() -> None:
        r = _cli(cfg, "run", "--once")
        assert r.returncode == 0, r.stderr
        assert _cli(cfg, "plan").returncode == 0  # nothing left to write

    run_once()
    healthy = served()
    assert healthy[("api.example.test.", "A", "primary")] == ["127.0.1.1"]
    assert healthy[("api.example.test.", "AAAA", "primary")] == ["fd00:1::1"]
    assert healthy[("www.example.test.", "A", "us-east-1")] == ["127.0.1.1"]
    assert healthy[("fast.example.test.", "A", "eu-west-1")] == ["127.0.2.1"]
    assert _cli(cfg, "drain", "us-east-1").returncode == 0
    run_once()
    over = served()
    assert over[("api.example.test.", "A", "primary")] == ["127.0.2.1"]
    assert over[("api.example.test.", "AAAA", "primary")] == ["fd00:2::1"]
    assert ("www.example.test.", "A", "us-east-1") not in over
    assert ("fast.example.test.", "A", "us-east-1") not in over
    assert _cli(cfg, "restore", "us-east-1").returncode == 0
    run_once()  # fail back: PRIMARY replaced by what it held at first
    assert served() == healthy


def _guarded_zone(moto_server: str, tmp_path: Path) -> tuple[Any, str, Path, int]:
    """A hosted zone on moto_server and a config of its weighted records, unprobed, whose
    delete-share guard refuses a drain of us-east-1 (2 of 6 record sets deleted)."""
    client = boto3.client("route53", endpoint_url=moto_server)
    zid = client.create_hosted_zone(Name="example.test.", CallerReference=str(tmp_path))
    zone_id = zid["HostedZone"]["Id"].split("/")[-1]
    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone_id).replace("http://127.0.0.1:5055", moto_server)
    text = text.replace("        check: web\n", "")
    port = free_port()
    cfg = tmp_path / "f.yaml"
    cfg.write_text(text + f"controller:\n  state: ./f.db\n  listen: 127.0.0.1:{port}\n"
                   "plan:\n  max_delete_share: 0.2\n  min_existing: 1\n")
    return client, zone_id, cfg, port


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", *args, "--config", str(cfg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _weighted(client: Any, zone_id: str) -> set[tuple[str, str]]:
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(s["Name"], s["SetIdentifier"]) for s in sets if s["Type"] == "A"}


ALL_WEIGHTED = {("www.example.test.", "us-east-1"), ("www.example.test.", "eu-west-1"),
                ("static.example.test.", "us-east-1"), ("static.example.test.", "eu-west-1")}


def test_run_once_refuses_a_plan_the_guards_refuse_and_force_applies_it(
        moto_server: str, tmp_path: Path) -> None:
    client, zone_id, cfg, _ = _guarded_zone(moto_server, tmp_path)
    first = _cli(cfg, "run", "--once")
    assert first.returncode == 0, first.stderr
    assert _weighted(client, zone_id) == ALL_WEIGHTED
    drained = _cli(cfg, "drain", "us-east-1")
    assert drained.returncode == 0, drained.stderr
    refused = _cli(cfg, "run", "--once")
    assert refused.returncode == 1
    assert "refused by safety guards" in refused.stderr and "max_delete_share" in refused.stderr
    assert _weighted(client, zone_id) == ALL_WEIGHTED  # nothing of it was written
    forced = _cli(cfg, "run", "--once", "--force")
    assert forced.returncode == 0, forced.stderr
    assert _weighted(client, zone_id) == ALL_WEIGHTED - {
        ("www.example.test.", "us-east-1"), ("static.example.test.", "us-east-1")}


def test_a_refused_plan_degrades_readyz_logs_an_error_and_clears(
        moto_server: str, tmp_path: Path) -> None:
    import json

    from tests.service_env import http_get, wait_for

    client, zone_id, cfg, port = _guarded_zone(moto_server, tmp_path)
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "failover", "run", "--config", str(cfg)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def readyz() -> tuple[int, str]:
        return http_get(port, "/readyz")

    def until(check: Any, timeout: float = 30) -> bool:
        return wait_for(check, timeout)

    try:
        assert until(lambda: _weighted(client, zone_id) == ALL_WEIGHTED and readyz()[0] == 200), \
            (tmp_path / "run.log").read_text()
        assert _cli(cfg, "drain", "us-east-1").returncode == 0
        assert until(lambda: readyz()[0] == 503), (tmp_path / "run.log").read_text()
        assert "plan refused by safety guards" in readyz()[1]
        assert "max_delete_share" in readyz()[1]
        text = (tmp_path / "run.log").read_text()
        assert re.search(r"ERROR .*event=plan_refused", text), text
        assert text.count("event=plan_refused") == 1  # said once, not at every tick
        history = json.loads(_cli(cfg, "history", "--json").stdout)
        assert any(e["message"].startswith("plan refused by safety guards") for e in history)
        assert _weighted(client, zone_id) == ALL_WEIGHTED
        assert _cli(cfg, "restore", "us-east-1").returncode == 0
        assert until(lambda: readyz()[0] == 200), readyz()
        history = json.loads(_cli(cfg, "history", "--json").stdout)
        assert any(e["message"].startswith("plans pass the safety guards again")
                   for e in history)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------- Route 53 health checks backstop

def backstop_config(zone_id: str, port: int = 8080, second: bool = True) -> Any:
    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone_id).replace(
        "  endpoint_url: http://127.0.0.1:5055\n", "  health_checks: true\n")
    text = text.replace("port: 8080", f"port: {port}")
    if second:
        text = text.replace("      - address: 127.0.1.1\n        check: web\n",
                            "      - address: 127.0.1.1\n        check: web\n"
                            "      - address: 127.0.1.2\n        check: web\n")
    return parse_config(text + RECORDS)


def our_checks(client: Any) -> dict[str, dict[str, Any]]:
    checks = {hc["Id"]: hc["HealthCheckConfig"]
              for hc in client.list_health_checks()["HealthChecks"]}
    out = {}
    for hid in checks:
        tags = client.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=[hid])
        t = {x["Key"]: x["Value"] for x in tags["ResourceTagSets"][0]["Tags"]}
        out[t["failover:check"]] = {**checks[hid], "Id": hid}
    return out


def sync_backstop(cfg: Any) -> Route53Adapter:
    from failover.dns import make_adapter

    a = make_adapter(cfg)
    assert isinstance(a, Route53Adapter)
    a.prepare()
    actual = read_actual(cfg, a)
    snap = initial_snapshot(cfg, 0)
    step = plan_step(cfg, snap, Overrides(), {}, 1, actual, native=True, decorate=a.decorate)
    a.apply(step.changes, actual)
    return a


def test_backstop_health_checks_mirror_the_config_and_attach_to_records(zone: str) -> None:
    client = boto3.client("route53", region_name="us-east-1")
    a = sync_backstop(backstop_config(zone))
    checks = our_checks(client)
    assert set(checks) == {"us-east-1/127.0.1.1#web", "us-east-1/127.0.1.2#web",
                           "eu-west-1/127.0.2.1#web", "ap-southeast-2/127.0.5.1#web",
                           "region:us-east-1"}
    leaf = checks["eu-west-1/127.0.2.1#web"]
    assert (leaf["Type"], leaf["IPAddress"], leaf["Port"], leaf["ResourcePath"],
            leaf["RequestInterval"], leaf["FailureThreshold"]) == (
        "HTTP", "127.0.2.1", 8080, "/health", 10, 3)
    calc = checks["region:us-east-1"]
    assert calc["Type"] == "CALCULATED" and calc["HealthThreshold"] == 1
    www = records(a, "www.example.test.")
    assert www["us-east-1"].health_check_id == calc["Id"]
    assert www["eu-west-1"].health_check_id == leaf["Id"]
    assert records(a, "api.example.test.")["primary"].health_check_id == calc["Id"]
    # a changed port is updated in place: same ids, found again by their tags
    sync_backstop(backstop_config(zone, port=9090))
    again = our_checks(client)
    assert again["eu-west-1/127.0.2.1#web"]["Id"] == leaf["Id"]
    assert again["eu-west-1/127.0.2.1#web"]["Port"] == 9090
    # one endpoint left in us-east-1: its record points at that check, the calculated
    # one is deleted once nothing refers to it
    a = sync_backstop(backstop_config(zone, port=9090, second=False))
    final = our_checks(client)
    assert "region:us-east-1" not in final and "us-east-1/127.0.1.2#web" not in final
    assert records(a, "www.example.test.")["us-east-1"].health_check_id == \
        final["us-east-1/127.0.1.1#web"]["Id"]


def test_backstop_is_off_by_default(zone: str) -> None:
    cfg = config(zone)
    from failover.dns import make_adapter

    a = make_adapter(cfg)
    assert a is not None
    a.prepare()
    sync(cfg, a)  # type: ignore[arg-type]
    assert boto3.client("route53", region_name="us-east-1").list_health_checks()[
        "HealthChecks"] == []


class Propagating:
    """A client whose changes stay PENDING for the first `pending` GetChange calls each
    (moto answers INSYNC at once); it records the change ids written and asked about."""

    def __init__(self, client: Any, pending: int) -> None:
        self.client, self.pending = client, pending
        self.written: list[str] = []
        self.asked: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name == "change_resource_record_sets":
            def change(**kwargs: Any) -> Any:
                result = real(**kwargs)
                self.written.append(result["ChangeInfo"]["Id"])
                return result
            return change
        if name == "get_change":
            def get(Id: str) -> Any:
                self.asked[Id] = self.asked.get(Id, 0) + 1
                if self.asked[Id] <= self.pending:
                    return {"ChangeInfo": {"Id": Id, "Status": "PENDING"}}
                return real(Id=Id)
            return get
        return real


def _insync_config(zone: str, timeout: float = 120) -> Any:
    return parse_config((EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone).replace(
        "  endpoint_url: http://127.0.0.1:5055\n",
        f"  wait_insync: true\n  insync_timeout: {timeout}\n"))


def test_wait_insync_waits_for_every_change_and_records_the_propagation_time(zone: str) -> None:
    cfg = _insync_config(zone)
    client = Propagating(boto3.client("route53", region_name="us-east-1"), pending=1)
    a = Route53Adapter(cfg.zone, cfg.provider, client=client)
    actual = read_actual(cfg, a)
    step = plan_step(cfg, initial_snapshot(cfg, 0), Overrides(), {}, 1, actual, native=True)
    report = a.apply(step.changes, actual)
    # every change written was asked about until it was INSYNC (once PENDING, then INSYNC)
    assert client.written and client.asked == {cid: 2 for cid in client.written}
    [note] = report.notes
    assert re.fullmatch(r"propagated \(INSYNC\) \d+\.\d s after the first change was sent", note)


def test_a_change_never_insync_is_an_error_after_the_timeout(zone: str) -> None:
    from failover.dns.base import DnsUnavailable

    cfg = _insync_config(zone, timeout=0.5)
    client = Propagating(boto3.client("route53", region_name="us-east-1"), pending=10**6)
    a = Route53Adapter(cfg.zone, cfg.provider, client=client)
    actual = read_actual(cfg, a)
    step = plan_step(cfg, initial_snapshot(cfg, 0), Overrides(), {}, 1, actual, native=True)
    with pytest.raises(DnsUnavailable, match=r"not INSYNC after 0\.5 s"):
        a.apply(step.changes, actual)


def test_drill_watches_the_delegation_set(zone: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from failover.dns import authoritative

    text = (EXAMPLES / "weighted-route53.yaml").read_text().replace(
        "Z0123456789ABCDEFGHIJ", zone).replace("  endpoint_url: http://127.0.0.1:5055\n", "")
    cfg = parse_config(text, base_dir=tmp_path)
    adapter = Route53Adapter(cfg.zone, cfg.provider, cfg=cfg)  # type: ignore[arg-type]
    names = adapter.name_servers()
    assert len(names) == 4 and all(n.endswith(".") for n in names)
    # the names resolve through the system resolver: tests stay on loopback, so answer here
    asked: list[str] = []

    def nothing(name: str) -> list[str]:
        asked.append(name)
        return []

    monkeypatch.setattr(authoritative, "_resolve", nothing)
    with pytest.raises(FailoverError, match=r"did not resolve.*list them in drill\.servers"):
        authoritative.authoritative_servers(cfg, adapter)
    assert asked == names
    monkeypatch.setattr(authoritative, "_resolve", lambda n: ["127.0.0.1"] if n == names[0] else [])
    servers, source = authoritative.authoritative_servers(cfg, adapter)
    assert servers == [authoritative.Server("127.0.0.1", 53, names[0])]
    assert source == "the hosted zone's delegation set"


def test_fenced_batches_a_deposed_leaders_late_batch_is_refused_whole(zone: str) -> None:
    from failover.dns.base import DnsFenced, fence_epoch

    cfg = config(zone)
    old, new = Route53Adapter(cfg.zone, cfg.provider), Route53Adapter(cfg.zone, cfg.provider)
    old.fence(3, "us-east-1")
    sync(cfg, old)
    assert fence_epoch(old.read_fence()) == 3
    new.fence(8, "eu-west-1")
    assert new.take_over()  # delete "epoch=3" exactly, create "epoch=8", one batch
    sync(cfg, new, down=("us-east-1",))
    served = records(new, "api.example.test.")["primary"].values
    # the old leader's late batch deletes the fence with its own value: refused, whole
    actual = read_actual(cfg, old)
    snap = initial_snapshot(cfg, 0)
    step = plan_step(cfg, snap, Overrides(), {}, 1, actual, native=True)
    assert step.changes
    with pytest.raises(DnsFenced) as caught:
        old.apply(step.changes, actual)
    assert caught.value.epoch == 8
    assert records(new, "api.example.test.")["primary"].values == served
    assert fence_epoch(new.read_fence()) == 8


def test_the_negative_ttl_is_read_from_the_hosted_zones_soa(zone: str) -> None:
    from failover.dns.negative import read_negative_ttl

    cfg = config(zone)
    [spec] = cfg.zone_specs
    negative = read_negative_ttl(spec, Route53Adapter(cfg.zone, cfg.provider, cfg=cfg))
    # a new hosted zone's SOA: TTL 900 s, MINIMUM 86400 s: resolvers keep "no answer" 15 min
    assert negative is not None
    assert (negative.soa_ttl, negative.minimum, negative.seconds) == (900, 86400, 900)


class Deposing:
    """A client that, once the first "failover" change batch has been applied, lets a
    newer leader take the fence before the next batch is sent."""

    def __init__(self, client: Any, depose: Any) -> None:
        self.client, self.depose, self.batches = client, depose, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != "change_resource_record_sets":
            return real

        def call(**kwargs: Any) -> Any:
            ours = kwargs["ChangeBatch"].get("Comment") == "failover"
            self.batches += ours
            result = real(**kwargs)
            if ours and self.batches == 1:
                self.depose()
            return result

        return call


def test_every_batch_is_fenced_a_leader_deposed_between_batches_writes_no_more(zone: str) -> None:
    from failover.dns.base import DnsFenced, fence_epoch

    prov = Route53Provider(type="route53", hosted_zone_id=zone, max_requests_per_second=5)
    new = Route53Adapter("example.test.", prov)
    new.fence(8, "eu-west-1")
    client = Deposing(boto3.client("route53", region_name="us-east-1"), new.take_over)
    old = Route53Adapter("example.test.", prov, client=client)
    old.fence(3, "us-east-1")
    keys = {(f"r{i}.example.test.", "A") for i in range(2500)}
    desired = [R(n, "A", 60, ["127.0.1.1"]) for n, _ in sorted(keys)]
    changes = plan.diff(desired, [], keys)
    assert len(batches(changes.changes, fenced=True)) == 3
    with pytest.raises(DnsFenced) as caught:
        old.apply(changes, [])
    assert caught.value.epoch == 8 and client.batches == 2  # the second batch: refused
    assert fence_epoch(new.read_fence()) == 8
    # only the first batch, sent while it led, was written
    written = {rs.name for rs in new.read(keys)}
    assert 0 < len(written) < 1000
    assert written == {n for n, _ in sorted(keys)[:len(written)]}
