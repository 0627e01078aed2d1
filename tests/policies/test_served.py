"""Weighted answers as the server serves them: equal shares per address where one RRset
holds the answer (RFC 2136 servers, zone files, Route 53 with networks), the weights
where Route 53 weighs."""

from __future__ import annotations

from typing import Any

from policies import Overrides, decide_all
from policies.model import Decision
from policies.served import (
    CANNOT_WEIGHT,
    GEO_ONE_ANSWER,
    address_shares,
    as_served,
    weighing_note,
)
from tests.builders import config, snapshot

RFC2136 = {"type": "rfc2136", "server": "127.0.0.1"}
ROUTE53 = {"type": "route53", "hosted_zone_id": "Z123"}
WEIGHTED = {"name": "www.example.test.", "type": "A", "policy": "weighted",
            "weights": {"a": 70, "b": 30}}
NETWORKS = {"europe": {"route53": {"continent": "EU"}}, "default": {}}


def decisions(regions: dict[str, list[str]], records: list[dict[str, Any]],
              **extra: Any) -> list[Decision]:
    cfg = config(regions, records, **extra)
    return decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)


def test_a_weighted_record_on_rfc2136_says_it_is_served_in_equal_shares() -> None:
    [d] = decisions({"a": ["127.0.1.1"], "b": ["127.0.2.1"]}, [WEIGHTED], provider=RFC2136)
    assert d.shares == {"a": 0.5, "b": 0.5}
    assert d.policy_shares == {"a": 0.7, "b": 0.3}
    assert d.shares_note == "equal shares: this server cannot weight"
    assert d.reason == ("a and b serve: weights a 70%, b 30%; served a 50%, b 50% "
                        "(equal shares: this server cannot weight)")
    assert d.to_dict()["shares"] == {"a": 0.5, "b": 0.5}


def test_each_address_gets_an_equal_share() -> None:
    # a holds two of the three addresses: two thirds of the traffic, whatever the weights
    [d] = decisions({"a": ["127.0.1.1", "127.0.1.2"], "b": ["127.0.2.1"]},
                    [{**WEIGHTED, "weights": {"a": 1, "b": 1}}], provider=RFC2136)
    assert d.shares == {"a": 2 / 3, "b": 1 / 3}
    assert "served a 67%, b 33% (equal shares per address: this server cannot weight)" \
        in d.reason


def test_route53_serves_the_weights() -> None:
    [d] = decisions({"a": ["127.0.1.1"], "b": ["127.0.2.1"]}, [WEIGHTED], provider=ROUTE53)
    assert d.shares == {"a": 0.7, "b": 0.3} and not d.shares_note
    assert "cannot weight" not in d.reason


def test_route53_with_networks_serves_each_networks_answer_in_equal_shares() -> None:
    # one geolocation record set per network: it holds both regions' addresses
    europe, default = decisions({"a": ["127.0.1.1"], "b": ["127.0.2.1"]}, [WEIGHTED],
                                provider=ROUTE53, networks=NETWORKS)
    assert (europe.network, default.network) == ("europe", "default")
    for d in (europe, default):
        assert d.shares == {"a": 0.5, "b": 0.5} and d.policy_shares == {"a": 0.7, "b": 0.3}
        assert d.shares_note == "equal shares: a geolocation record holds one answer"


def test_what_holds_one_answer_is_said_by_provider() -> None:
    regions = {"a": ["127.0.1.1"], "b": ["127.0.2.1"]}
    name = WEIGHTED["name"]
    assert weighing_note(config(regions, [WEIGHTED], provider=RFC2136), name) == CANNOT_WEIGHT
    assert weighing_note(config(regions, [WEIGHTED], provider=ROUTE53), name) is None
    geo = config(regions, [WEIGHTED], provider=ROUTE53, networks=NETWORKS)
    assert weighing_note(geo, name) == GEO_ONE_ANSWER
    d = weighted(("a", "b"), ("127.0.1.1", "127.0.2.1"),
                 {"a": ("127.0.1.1",), "b": ("127.0.2.1",)}, {"a": 0.7, "b": 0.3})
    served = as_served(d, GEO_ONE_ANSWER)
    assert served.shares_note == "equal shares: a geolocation record holds one answer"
    assert served.reason.endswith("(equal shares: a geolocation record holds one answer)")


def test_zones_on_different_providers_are_decided_apart() -> None:
    # the same record shape in a Route 53 zone and in an RFC 2136 zone
    records = [WEIGHTED, {**WEIGHTED, "name": "www.other.test."}]
    zones = [{"zone": "example.test.", "provider": ROUTE53},
             {"zone": "other.test.", "provider": RFC2136}]
    on_route53, on_rfc2136 = decisions({"a": ["127.0.1.1"], "b": ["127.0.2.1"]}, records,
                                       zone="", zones=zones)
    assert on_route53.shares == {"a": 0.7, "b": 0.3}
    assert on_rfc2136.shares == {"a": 0.5, "b": 0.5}


def weighted(regions: tuple[str, ...], values: tuple[str, ...],
             by_region: dict[str, tuple[str, ...]], shares: dict[str, float],
             rtype: str = "A") -> Decision:
    return Decision(name="www.example.test.", type=rtype, ttl=60, policy="weighted",
                    regions=regions, values=values, shares=shares, basis="health",
                    reason="chosen", at=1000.0, by_region=by_region)


def test_an_address_two_regions_hold_is_split_between_them() -> None:
    d = weighted(("a", "b"), ("127.0.1.1", "127.0.9.9"),
                 {"a": ("127.0.1.1", "127.0.9.9"), "b": ("127.0.9.9",)}, {"a": 0.5, "b": 0.5})
    assert address_shares(d) == {"a": 0.75, "b": 0.25}
    # a region answering nothing of its own has no share
    lone = weighted(("a", "b"), ("127.0.1.1",), {"a": ("127.0.1.1",)}, {"a": 1.0})
    assert address_shares(lone) == {"a": 1.0}


def test_shares_served_as_chosen_leave_the_decision_as_it_is() -> None:
    d = weighted(("a", "b"), ("127.0.1.1", "127.0.2.1"),
                 {"a": ("127.0.1.1",), "b": ("127.0.2.1",)}, {"a": 0.5, "b": 0.5})
    assert as_served(d) is d


def test_a_weighted_cname_keeps_its_reason_and_says_it_holds_one_target() -> None:
    d = weighted(("a", "b"), ("a.example.net.",), {"a": ("a.example.net.",)},
                 {"a": 0.5, "b": 0.5}, rtype="CNAME")
    served = as_served(d)
    assert served.shares == {"a": 1.0} and served.policy_shares == {"a": 0.5, "b": 0.5}
    assert served.shares_note == "a CNAME holds one target: this server cannot weight"
    assert served.reason == "chosen"
