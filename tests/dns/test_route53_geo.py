"""Answers per client network on Route 53: one geolocation record set per network
(SetIdentifier: the network; default: the `*` location) holding the answer the
controller decided, written to moto_server in the usual batches, throttling and fence."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from failover.config import Config, parse_config
from failover.dns import make_adapter
from failover.dns.base import DnsRejected, fence_epoch
from failover.dns.route53 import RateLimiter, Route53Adapter
from failover.dns.route53_records import MAX_CHARS, MAX_ELEMENTS, _from_api, batches, validate
from failover.reconcile import Planned, plan_step, read_actual
from failover.records import RecordSet
from policies import Overrides
from tests.builders import snapshot
from tests.dns import test_route53

aws_env, moto_server = test_route53.aws_env, test_route53.moto_server  # fixtures

EAST, WEST = "127.0.1.1", "127.0.2.1"
EU = {"ContinentCode": "EU"}
ANYWHERE = {"CountryCode": "*"}
LATENCY = {"us-east-1": 20.0, "eu-west-1": 80.0}  # us-east-1 the faster
RECORDS = """
  - name: api.example.test.
    type: A
    policy: failover
    order: [us-east-1, eu-west-1]
    networks:
      europe: {order: [eu-west-1, us-east-1]}
  - {name: www.example.test., type: A, policy: weighted, weights: {us-east-1: 70, eu-west-1: 30}}
  - {name: fast.example.test., type: A, policy: latency}
"""


def hosted_zone(url: str) -> tuple[Any, str]:
    client = boto3.client("route53", endpoint_url=url)
    zid = client.create_hosted_zone(Name="example.test.", CallerReference=str(time.time_ns()))
    return client, zid["HostedZone"]["Id"].split("/")[-1]


def geo_config(url: str, zone_id: str, records: str = RECORDS, networks: bool = True,
               provider: str = "", extra: str = "") -> Config:
    nets = ("networks:\n  europe: {cidrs: [192.0.2.0/24], route53: {continent: EU}}\n"
            "  default: {}\n") if networks else ""
    return parse_config(f"""zone: example.test.
provider: {{type: route53, hosted_zone_id: {zone_id}, endpoint_url: {url},
            replace: delete_create{provider}}}
checks: {{web: {{type: HTTP, port: 8080, request_interval: 1}}}}
{nets}regions:
  us-east-1: {{endpoints: [{{address: {EAST}, check: web}}]}}
  eu-west-1: {{endpoints: [{{address: {WEST}, check: web}}]}}
records:{records}
{extra}""")


def adapter_for(cfg: Config, client: Any = None) -> Route53Adapter:
    a = make_adapter(cfg)
    assert isinstance(a, Route53Adapter)
    if client is not None:
        a.client = client
    a.limiter = RateLimiter(1000)  # not what this test is about
    return a


def write(cfg: Config, down: dict[str, float] | None = None,
          adapter: Route53Adapter | None = None) -> Planned:
    """Plan and apply as `failover run --once` does: checks mirrored, records decorated."""
    a = adapter or adapter_for(cfg)
    a.prepare()
    actual = read_actual(cfg, a)
    step = plan_step(cfg, snapshot(cfg, down, latency=LATENCY), Overrides(), {}, 1000.0,
                     actual, native=a.native_routing, decorate=a.decorate)
    assert not step.violations and not step.blocked
    a.apply(step.changes, actual)
    return step


def held(client: Any, zone_id: str) -> dict[tuple[str, str | None], dict[str, Any]]:
    """The hosted zone's A record sets as the Route 53 API lists them."""
    out = {}
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id}
    while True:
        page = client.list_resource_record_sets(**kwargs)
        for s in page["ResourceRecordSets"]:
            if s["Type"] == "A":
                out[(s["Name"], s.get("SetIdentifier"))] = {
                    k: v for k, v in s.items() if k not in ("Name", "Type", "SetIdentifier")}
        if not page.get("IsTruncated"):
            return out
        kwargs.update(StartRecordName=page["NextRecordName"],
                      StartRecordType=page["NextRecordType"])


def answers(sets: dict[tuple[str, str | None], dict[str, Any]], name: str
            ) -> dict[str | None, tuple[dict[str, str], list[str]]]:
    """Each network's (location, values) of a name."""
    return {net: (s.get("GeoLocation", {}), sorted(r["Value"] for r in s["ResourceRecords"]))
            for (n, net), s in sets.items() if n == name}


def test_each_network_is_a_geolocation_record_set_with_its_decided_answer(
        moto_server: str) -> None:
    client, zone_id = hosted_zone(moto_server)
    cfg = geo_config(moto_server, zone_id)
    step = write(cfg)
    sets = held(client, zone_id)
    assert answers(sets, "api.example.test.") == {"europe": (EU, [WEST]),
                                                   "default": (ANYWHERE, [EAST])}
    # weights cannot hold inside one record set: both regions' addresses, equal shares
    assert answers(sets, "www.example.test.") == {"europe": (EU, [EAST, WEST]),
                                                   "default": (ANYWHERE, [EAST, WEST])}
    assert answers(sets, "fast.example.test.") == {"europe": (EU, [EAST]),
                                                    "default": (ANYWHERE, [EAST])}
    # the answer the controller decided, and no routing of Route 53's own
    decided = {(d.name, d.network): list(d.values) for d in step.decisions}
    assert {k: sorted(r["Value"] for r in s["ResourceRecords"]) for k, s in sets.items()} \
        == decided
    assert all(set(s) == {"GeoLocation", "TTL", "ResourceRecords"} for s in sets.values())
    www = {d.network: d for d in step.decisions if d.name == "www.example.test."}
    assert www["default"].shares == {"us-east-1": 0.5, "eu-west-1": 0.5}
    assert www["default"].policy_shares == {"us-east-1": 0.7, "eu-west-1": 0.3}


def test_a_failure_moves_only_the_networks_it_answers_and_then_nothing_is_left_to_do(
        moto_server: str) -> None:
    client, zone_id = hosted_zone(moto_server)
    cfg = geo_config(moto_server, zone_id)
    write(cfg)
    down = {"us-east-1": 990.0}
    step = write(cfg, down)
    api = [(c.action, c.record.set_identifier) for c in step.changes.changes
           if c.record.name == "api.example.test."]
    assert api == [("upsert", "default")]  # europe already answers eu-west-1
    sets = held(client, zone_id)
    assert answers(sets, "api.example.test.") == {"europe": (EU, [WEST]),
                                                   "default": (ANYWHERE, [WEST])}
    assert answers(sets, "www.example.test.")["default"] == (ANYWHERE, [WEST])
    assert answers(sets, "fast.example.test.")["europe"] == (EU, [WEST])
    # read back from Route 53, every record set compares equal to the one desired
    a = adapter_for(cfg)
    again = plan_step(cfg, snapshot(cfg, down, latency=LATENCY), Overrides(), {}, 1000.0,
                      read_actual(cfg, a), native=True, decorate=a.decorate)
    assert not again.changes, again.changes.summary()


class Recording:
    """A Route 53 client that records each change batch and answers Throttling to the
    first `throttles` of them, as Route 53 does under load."""

    def __init__(self, client: Any, throttles: int = 0) -> None:
        self.client, self.throttles = client, throttles
        self.sent: list[list[dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)
        if name != "change_resource_record_sets":
            return real

        def call(**kwargs: Any) -> Any:
            if self.throttles > 0:
                self.throttles -= 1
                raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}},
                                  "ChangeResourceRecordSets")
            self.sent.append(kwargs["ChangeBatch"]["Changes"])
            return real(**kwargs)

        return call


def within_limits(batch: list[dict[str, Any]]) -> bool:
    values = [r["Value"] for c in batch for r in c["ResourceRecordSet"]["ResourceRecords"]]
    return len(values) <= MAX_ELEMENTS and sum(len(v) for v in values) <= MAX_CHARS


def test_a_thousand_names_in_two_networks_go_in_batches_within_the_limits(
        moto_server: str) -> None:
    client, zone_id = hosted_zone(moto_server)
    records = "".join(f"\n  - {{name: r{i:04d}.example.test., type: A, policy: failover, "
                      "order: [us-east-1, eu-west-1], "
                      "networks: {europe: {order: [eu-west-1, us-east-1]}}}"
                      for i in range(1000))
    cfg = geo_config(moto_server, zone_id, records=records)
    recording = Recording(client, throttles=2)
    a = adapter_for(cfg, recording)
    step = write(cfg, adapter=a)
    # 2,000 geolocation record sets and 1,000 markers: a name's two networks are never
    # split, so a batch holds 999 or 1,000 of them
    sizes = [len(b) for b in batches(step.changes.changes)]
    assert sum(sizes) == 3000 and max(sizes) == 1000 and len(sizes) == 4
    assert len(recording.sent) == a.stats.change_batches == 4 and a.stats.retries == 2
    assert all(within_limits(b) for b in recording.sent)
    for batch in recording.sent:
        names = [c["ResourceRecordSet"]["Name"] for c in batch
                 if c["ResourceRecordSet"]["Type"] == "A"]
        assert all(names.count(n) == 2 for n in names)
    sets = held(client, zone_id)
    assert len(sets) == 2000
    assert {(net, s["ResourceRecords"][0]["Value"]) for (_, net), s in sets.items()} == {
        ("europe", WEST), ("default", EAST)}
    # us-east-1 fails under a fleet leader's fence: each default set is replaced (DELETE
    # of what was read + CREATE), every batch carries the fence, europe's are not touched
    recording.sent.clear()
    a.fence(7, "us-east-1")
    step = write(cfg, {"us-east-1": 990.0}, adapter=a)
    assert {(c.action, c.record.set_identifier) for c in step.changes.changes} == {
        ("upsert", "default")}
    fenced = [b for b in recording.sent if len(b) > 2]  # the take-over is a batch of its own
    assert len(fenced) == len(batches(step.changes.changes, fenced=True)) == 3
    assert all(within_limits(b) for b in fenced)
    assert all(b[0]["Action"] == "DELETE" and b[0]["ResourceRecordSet"]["Type"] == "TXT"
               for b in fenced)
    assert fence_epoch(a.read_fence()) == 7
    assert {(net, s["ResourceRecords"][0]["Value"]) for (_, net), s in
            held(client, zone_id).items()} == {("europe", WEST), ("default", WEST)}


def test_the_backstop_checks_are_not_attached_to_geolocation_record_sets(
        moto_server: str) -> None:
    client, zone_id = hosted_zone(moto_server)
    records = RECORDS.replace("    networks:\n      europe: {order: [eu-west-1, us-east-1]}\n", "")
    plain = geo_config(moto_server, zone_id, records=records, networks=False,
                       provider=", health_checks: true")
    write(plain)
    assert len(client.list_health_checks()["HealthChecks"]) == 2
    assert held(client, zone_id)[("api.example.test.", "primary")]["HealthCheckId"]
    # networks added: PRIMARY/SECONDARY give way to geolocation sets in one batch, none
    # with a check, and the checks nothing refers to any more are deleted (every routing
    # record set is replaced: more deletes than the guard's default share)
    cfg = geo_config(moto_server, zone_id, records=records, provider=", health_checks: true",
                     extra="plan: {max_delete_share: 1.0}")
    write(cfg)
    sets = held(client, zone_id)
    assert set(answers(sets, "api.example.test.")) == {"europe", "default"}
    assert not any("HealthCheckId" in s for s in sets.values())
    assert client.list_health_checks()["HealthChecks"] == []


# ----------------------------------------------------------------- pure: no Route 53

R = RecordSet.make
KEYS = {("x.example.test.", "A")}


def geo(net: str | None, where: dict[str, str] | None, value: str = EAST, **routing: Any) -> RecordSet:
    return R("x.example.test.", "A", 60, [value], set_identifier=net,
             geo=tuple(sorted((where or {}).items())) if where is not None else None,
             **routing)


def test_validate_takes_geolocation_sets_and_refuses_what_route53_would() -> None:
    assert validate([geo("europe", EU), geo("default", ANYWHERE)], KEYS) == []
    # no `*` location: clients elsewhere get no answer, as a default failing closed asks
    assert validate([geo("europe", EU)], KEYS) == []
    assert validate([geo("de", {"CountryCode": "DE"}),
                     geo("ca", {"CountryCode": "US", "SubdivisionCode": "CA"})], KEYS) == []
    [mixed] = validate([geo("europe", EU), geo("primary", None, failover="PRIMARY")], KEYS)
    assert "mixes routing policies ['failover', 'geolocation']" in mixed
    [twice] = validate([geo("europe", EU), geo("eu", EU)], KEYS)
    assert "two geolocation record sets for one location" in twice
    assert "unique SetIdentifier" in validate([geo("europe", EU), geo("europe", ANYWHERE)],
                                              KEYS)[0]
    assert "unique SetIdentifier" in validate([geo("default", ANYWHERE),
                                               geo(None, EU)], KEYS)[0]
    both = validate([geo("x", {"ContinentCode": "EU", "CountryCode": "DE"})], KEYS)
    assert both == ["x.example.test. A x: a location is a continent or a country, not both"]
    assert "'XX' is not a continent" in validate([geo("x", {"ContinentCode": "XX"})], KEYS)[0]
    assert "a subdivision needs its country" in validate(
        [geo("x", {"SubdivisionCode": "CA"})], KEYS)[0]
    assert "the default location (*) has no subdivision" in validate(
        [geo("x", {"CountryCode": "*", "SubdivisionCode": "CA"})], KEYS)[0]
    assert "one routing policy, not geolocation and weighted" in validate(
        [geo("x", EU, weight=10)], KEYS)[0]


def test_a_plan_route53_would_refuse_is_refused_before_any_call() -> None:
    from failover import plan
    from failover.config import Route53Provider

    a = Route53Adapter("example.test.", Route53Provider(type="route53", hosted_zone_id="Z1"),
                       client=object())
    with pytest.raises(DnsRejected, match="two geolocation record sets for one location"):
        a.apply(plan.diff([geo("europe", EU), geo("eu", EU)], [], KEYS), [])
    assert a.stats.calls == 0


def test_a_location_read_back_is_spelt_as_the_ledger_spells_it() -> None:
    item = {"Name": "x.example.test.", "Type": "A", "TTL": 60, "SetIdentifier": "ca",
            "ResourceRecords": [{"Value": EAST}],
            "GeoLocation": {"SubdivisionCode": "ca", "CountryCode": "us", "Other": "x"}}
    rs = _from_api(item)
    assert rs is not None
    assert rs.geo == (("CountryCode", "US"), ("SubdivisionCode", "CA"))
    for bare in ({**item, "GeoLocation": {}}, {**item, "GeoLocation": None},
                 {k: v for k, v in item.items() if k != "GeoLocation"}):
        read = _from_api(bare)
        assert read is not None and read.geo is None


def test_a_geolocation_set_named_like_a_region_gets_no_region_check() -> None:
    from failover.dns.route53_checks import HealthChecks

    cfg = geo_config("http://127.0.0.1:1", "Z1", provider=", health_checks: true")
    checks = HealthChecks(lambda *a, **k: None, "failover")
    checks.ids = {f"eu-west-1/{WEST}#web": "hc-west"}
    weighted = R("x.example.test.", "A", 60, [WEST], set_identifier="eu-west-1", weight=1)
    # a network may be named as a region: its geolocation set holds the decided answer
    located = geo("eu-west-1", EU, WEST)
    assert [rs.health_check_id for rs in checks.decorate(cfg, [weighted, located])] == [
        "hc-west", None]
