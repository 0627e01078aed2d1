"""Decisions as Route 53's native routing records (policies/native.py), without a cloud:
PRIMARY/SECONDARY for failover, one weighted or latency record set per region."""

from __future__ import annotations

from dataclasses import replace

from policies import Overrides, decide_all
from policies.model import Decision
from policies.native import native_desired, native_records
from tests.builders import config, snapshot

REGIONS = {"us-east-1": ["127.0.1.1", "127.0.1.2", "2001:db8::1", "us1.example.net",
                         "us2.example.net"],
           "eu-west-1": ["127.0.2.1", "2001:db8::2"],
           "lab": ["127.0.3.1", "lab.example.net"],  # not an AWS region: no latency record
           "ap-southeast-2": ["127.0.4.1"]}
RECORDS = [
    {"name": "api.example.test.", "type": "A", "policy": "failover",
     "order": ["us-east-1", "eu-west-1", "lab"]},
    {"name": "multi.example.test.", "type": "A", "policy": "failover",
     "order": [["us-east-1", "eu-west-1"], "lab"]},
    {"name": "www.example.test.", "type": "A", "policy": "weighted",
     "weights": {"us-east-1": 70, "eu-west-1": 30, "ap-southeast-2": 0}},
    {"name": "fast.example.test.", "type": "A", "policy": "latency",
     "regions": ["us-east-1", "eu-west-1", "lab"]},
    {"name": "v6.example.test.", "type": "AAAA", "policy": "latency",
     "regions": ["us-east-1", "eu-west-1"]},
    {"name": "c.example.test.", "type": "CNAME", "policy": "failover", "order": ["lab", "us-east-1"]},
]
US, US2, EU, LAB, AP = "127.0.1.1", "127.0.1.2", "127.0.2.1", "127.0.3.1", "127.0.4.1"
Row = tuple[str, str, tuple[str, ...], str | None, object]


def native(down: tuple[str, ...] = (), overrides: Overrides | None = None,
           **fields: object) -> list[Row]:
    """(name, type, values, set identifier, failover / weight / AWS region) in order;
    `fields` are set on every record."""
    cfg = config(REGIONS, [r | fields for r in RECORDS])
    decisions = decide_all(cfg, snapshot(cfg, {r: 1.0 for r in down}), overrides or Overrides(),
                           {}, 1000.0)
    out = []
    for rs in native_desired(cfg, decisions):
        assert rs.ttl == 60
        routing = rs.failover or rs.region or rs.weight
        out.append((rs.name.split(".")[0], rs.type, rs.values, rs.set_identifier, routing))
    return out


def test_all_healthy_primary_is_the_first_tier_secondary_the_next() -> None:
    assert native() == [
        ("api", "A", (US, US2), "primary", "PRIMARY"),
        ("api", "A", (EU,), "secondary", "SECONDARY"),
        ("multi", "A", (US, US2, EU), "primary", "PRIMARY"),
        ("multi", "A", (LAB,), "secondary", "SECONDARY"),
        ("www", "A", (US, US2), "us-east-1", 70),
        ("www", "A", (EU,), "eu-west-1", 30),  # ap-southeast-2, weight 0, is not answering
        ("fast", "A", (US, US2), "us-east-1", "us-east-1"),
        ("fast", "A", (EU,), "eu-west-1", "eu-west-1"),
        ("v6", "AAAA", ("2001:db8::1",), "us-east-1", "us-east-1"),
        ("v6", "AAAA", ("2001:db8::2",), "eu-west-1", "eu-west-1"),
        ("c", "CNAME", ("lab.example.net.",), "primary", "PRIMARY"),
        ("c", "CNAME", ("us1.example.net.",), "secondary", "SECONDARY"),  # one target
    ]


def test_a_failed_region_leaves_primary_to_the_next_tier_and_its_own_records() -> None:
    assert native(down=("us-east-1",))[:7] == [
        ("api", "A", (EU,), "primary", "PRIMARY"),
        ("api", "A", (LAB,), "secondary", "SECONDARY"),
        ("multi", "A", (EU,), "primary", "PRIMARY"),
        ("multi", "A", (LAB,), "secondary", "SECONDARY"),
        ("www", "A", (EU,), "eu-west-1", 30),
        ("fast", "A", (EU,), "eu-west-1", "eu-west-1"),
        ("v6", "AAAA", ("2001:db8::2",), "eu-west-1", "eu-west-1"),
    ]


def test_the_last_tier_answering_keeps_secondary_on_it() -> None:
    rows = native(down=("us-east-1", "eu-west-1"))
    assert rows[:5] == [
        ("api", "A", (LAB,), "primary", "PRIMARY"),
        ("api", "A", (LAB,), "secondary", "SECONDARY"),
        ("multi", "A", (LAB,), "primary", "PRIMARY"),
        ("multi", "A", (LAB,), "secondary", "SECONDARY"),
        ("www", "A", (AP,), "ap-southeast-2", 0),  # the zero-weight region, alone
    ]
    assert [r for r in rows if r[0] == "fast"] == []  # lab has no AWS region to route by


def test_fail_open_publishes_the_regions_the_decision_chose() -> None:
    rows = native(down=tuple(REGIONS))
    assert ("fast", "A", (US, US2), "us-east-1", "us-east-1") in rows
    assert [r for r in rows if r[0] == "fast"] == [("fast", "A", (US, US2), "us-east-1",
                                                    "us-east-1")]
    assert ("www", "A", (EU,), "eu-west-1", 30) in rows


def test_a_record_that_fails_closed_has_no_records() -> None:
    assert native(down=tuple(REGIONS), fail_mode="closed") == []


def test_a_pinned_failover_record_keeps_the_first_tier_as_secondary() -> None:
    rows = native(overrides=Overrides(pinned={"api.example.test.": "eu-west-1"}))
    assert rows[:2] == [("api", "A", (EU,), "primary", "PRIMARY"),
                        ("api", "A", (US, US2), "secondary", "SECONDARY")]


def test_one_record_alone() -> None:
    cfg = config(REGIONS, RECORDS)
    [d] = [d for d in decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
           if d.name == "www.example.test."]
    assert [(rs.set_identifier, rs.weight) for rs in native_records(cfg, cfg.records[2], d)] \
        == [("us-east-1", 70), ("eu-west-1", 30)]


def decision(record: dict, **fields: object) -> tuple[object, object, Decision]:
    """A config holding `record` alone, the record, and a decision made up of `fields`."""
    cfg = config(REGIONS, [record], pools={"edge": {
        "us-east-1": [{"address": "127.0.9.1", "check": "web"}],
        "eu-west-1": [{"address": "127.0.9.2", "check": "web"}]}})
    base = Decision(name=record["name"], type=record["type"], ttl=60, policy=record["policy"],
                    regions=(), values=(), shares={}, basis="health", reason="", at=1000.0)
    return cfg, cfg.records[0], replace(base, **fields)  # type: ignore[arg-type]


def test_weights_of_one_are_kept_and_a_region_without_values_has_no_record() -> None:
    cfg, rec, d = decision(
        {"name": "www.example.test.", "type": "A", "policy": "weighted",
         "weights": {"us-east-1": 1, "eu-west-1": 1}},
        regions=("us-east-1", "eu-west-1"), values=(US, EU), usable=("us-east-1",),
        by_region={"us-east-1": (US,)})
    [rs] = native_records(cfg, rec, d)
    assert (rs.set_identifier, rs.values, rs.weight) == ("us-east-1", (US,), 1)


def test_a_cname_region_record_holds_one_target() -> None:
    cfg, rec, d = decision(
        {"name": "c.example.test.", "type": "CNAME", "policy": "weighted",
         "weights": {"us-east-1": 1, "eu-west-1": 1}},
        regions=("us-east-1", "eu-west-1"), values=("us1.example.net.",),
        by_region={"us-east-1": ("us1.example.net.", "us2.example.net.")})
    [rs] = native_records(cfg, rec, d)
    assert rs.values == ("us1.example.net.",)


def test_secondary_is_the_first_tier_not_answering_and_a_single_tier_has_none() -> None:
    cfg, rec, d = decision(
        {"name": "api.example.test.", "type": "A", "policy": "failover",
         "order": ["us-east-1", "eu-west-1", "lab", "ap-southeast-2"]},
        regions=("us-east-1", "eu-west-1"), values=(US, EU), tier=0)
    # eu-west-1 answers already: the next tier after it, not the last one
    assert [(rs.set_identifier, rs.values) for rs in native_records(cfg, rec, d)] == [
        ("primary", (US, EU)), ("secondary", (LAB,))]
    cfg, rec, d = decision({"name": "api.example.test.", "type": "A", "policy": "failover",
                            "order": ["us-east-1"]}, regions=("us-east-1",), values=(US,),
                           tier=0)
    assert [rs.set_identifier for rs in native_records(cfg, rec, d)] == ["primary"]


def test_a_pooled_records_secondary_holds_the_pools_addresses() -> None:
    cfg, rec, d = decision(
        {"name": "api.example.test.", "type": "A", "policy": "failover",
         "order": ["us-east-1", "eu-west-1"], "pool": "edge"},
        regions=("us-east-1",), values=("127.0.9.1",), tier=0)
    assert [(rs.set_identifier, rs.values) for rs in native_records(cfg, rec, d)] == [
        ("primary", ("127.0.9.1",)), ("secondary", ("127.0.9.2",))]
