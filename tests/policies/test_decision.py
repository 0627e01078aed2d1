"""A decision as status, history and `plan --json` show it."""

from __future__ import annotations

import json
from dataclasses import replace

from policies.model import Decision


def test_a_decision_as_json_rounds_shares_and_omits_what_was_not_changed() -> None:
    d = Decision("www.example.test.", "A", 60, "weighted", ("a", "b", "c"),
                 ("127.0.1.1", "127.0.2.1", "127.0.3.1"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3},
                 "health", "a, b and c serve", 10.0, tier=None, usable=("a", "b", "c"))
    assert json.loads(json.dumps(d.to_dict())) == {
        "name": "www.example.test.", "type": "A", "policy": "weighted",
        "regions": ["a", "b", "c"], "values": ["127.0.1.1", "127.0.2.1", "127.0.3.1"],
        "shares": {"a": 0.333333, "b": 0.333333, "c": 0.333333}, "basis": "health",
        "reason": "a, b and c serve", "tier": None}


def test_served_shares_other_than_the_policys_are_shown_with_both_and_why() -> None:
    d = Decision("api.example.test.", "A", 60, "failover", ("b",), ("127.0.2.1",),
                 {"a": 2 / 3, "b": 1 / 3}, "hold", "b serves", 10.0, tier=1,
                 policy_shares={"b": 1.0, "a": 0.0}, shares_note="one RRset: equal shares")
    assert d.to_dict() == {
        "name": "api.example.test.", "type": "A", "policy": "failover", "regions": ["b"],
        "values": ["127.0.2.1"], "shares": {"a": 0.666667, "b": 0.333333}, "basis": "hold",
        "reason": "b serves", "tier": 1, "policy_shares": {"b": 1.0, "a": 0.0},
        "shares_note": "one RRset: equal shares"}
    assert d.key == ("api.example.test.", "A")


def test_policy_shares_in_the_json_form_are_rounded_to_six_places() -> None:
    d = Decision(name="www.example.test.", type="A", ttl=60, policy="weighted",
                 regions=("a", "b"), values=("127.0.1.1", "127.0.2.1"),
                 shares={"a": 0.5, "b": 0.5}, basis="health", reason="", at=1.0,
                 policy_shares={"a": 2 / 3, "b": 1 / 3}, shares_note="equal shares")
    assert d.to_dict()["policy_shares"] == {"a": 0.666667, "b": 0.333333}


def test_a_region_is_said_unhealthy_with_its_reason_as_the_probe_gave_it() -> None:
    from policies.model import RegionView
    from policies.reasons import describe

    view = RegionView("a", healthy=False, values=(), all_values=(),
                      reason="connection refused")
    assert describe(view) == "a unhealthy: connection refused"
    assert describe(replace(view, reason="after 2 failures: timeout")) == (
        "a unhealthy after 2 failures: timeout")
