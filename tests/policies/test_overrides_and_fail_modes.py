"""Drain, pin and the fail modes: what answers when operators or outages take regions away."""

from __future__ import annotations

from failover.health.snapshot import EndpointHealth, HealthSnapshot
from failover.records import RecordSet
from policies import Overrides, decide, decide_all, desired_records, region_views
from policies.model import Decision
from tests.builders import config, snapshot

REGIONS = {"a": ["127.0.1.1"], "b": ["127.0.2.1"]}
FAILOVER = {"name": "api.example.test.", "type": "A", "policy": "failover", "order": ["a", "b"]}


def run(record: dict, down: dict[str, float] | None = None, overrides: Overrides | None = None,
        previous: Decision | None = None) -> Decision:
    cfg = config(REGIONS, [record])
    ov = overrides or Overrides()
    views = region_views(cfg, cfg.records[0], snapshot(cfg, down), ov)
    return decide(cfg.records[0], views, ov, previous, 1000.0)


def test_all_unhealthy_fails_open_with_the_primary() -> None:
    d = run(FAILOVER, down={"a": 1.0, "b": 2.0})
    assert d.basis == "fail_open" and d.regions == ("a",) and d.values == ("127.0.1.1",)
    assert "failing open" in d.reason


def test_weighted_fails_open_over_every_region() -> None:
    rec = {**FAILOVER, "policy": "weighted", "weights": {"a": 1, "b": 3}}
    del rec["order"]
    d = run(rec, down={"a": 1.0, "b": 2.0})
    assert d.basis == "fail_open" and d.shares == {"a": 0.25, "b": 0.75}


def test_last_known_good_keeps_the_previous_healthy_answer() -> None:
    rec = {**FAILOVER, "fail_mode": "last_known_good"}
    on_b = run(rec, down={"a": 1.0})
    assert on_b.values == ("127.0.2.1",)
    d = run(rec, down={"a": 1.0, "b": 5.0}, previous=on_b)
    assert d.basis == "last_known_good" and d.values == ("127.0.2.1",)
    # and it keeps it across further ticks with everything down
    assert run(rec, down={"a": 1.0, "b": 5.0}, previous=d).values == ("127.0.2.1",)


def test_last_known_good_without_history_fails_open() -> None:
    d = run({**FAILOVER, "fail_mode": "last_known_good"}, down={"a": 1.0, "b": 2.0})
    assert d.basis == "fail_open" and d.values == ("127.0.1.1",)


def test_closed_gives_no_answer_and_no_record() -> None:
    d = run({**FAILOVER, "fail_mode": "closed"}, down={"a": 1.0, "b": 2.0})
    assert d.basis == "closed" and d.values == ()
    assert desired_records([d]) == []


def test_drain_moves_the_answer_like_a_failure() -> None:
    d = run(FAILOVER, overrides=Overrides(drained=frozenset({"a"})))
    assert d.regions == ("b",) and d.reason == "b serves: a drained by operator"


def test_draining_every_region_never_empties_the_answer() -> None:
    d = run(FAILOVER, overrides=Overrides(drained=frozenset({"a", "b"})))
    assert d.basis == "fail_open" and d.values == ("127.0.1.1",)


def test_drained_regions_stay_out_of_fail_open_when_others_remain() -> None:
    d = run(FAILOVER, down={"b": 1.0}, overrides=Overrides(drained=frozenset({"a"})))
    assert d.basis == "fail_open" and d.regions == ("b",)


def test_pin_wins_over_health_and_drain() -> None:
    ov = Overrides(drained=frozenset({"b"}), pinned={"api.example.test.": "b"})
    d = run(FAILOVER, down={"b": 1.0}, overrides=ov)
    assert d.basis == "pinned" and d.values == ("127.0.2.1",)
    assert "pinned by operator" in d.reason and "b unhealthy" in d.reason


def test_pin_to_a_region_outside_the_record_is_ignored_with_a_note() -> None:
    d = run(FAILOVER, overrides=Overrides(pinned={"api.example.test.": "zz"}))
    assert d.regions == ("a",) and "pin to zz ignored" in d.reason


def test_cname_answers_with_one_target() -> None:
    cfg = config({"a": ["lb-a.example.net"], "b": ["lb-b.example.net"]},
                 [{"name": "www.example.test.", "type": "CNAME", "policy": "weighted",
                   "weights": {"a": 1, "b": 3}}])
    [d] = decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
    assert d.values == ("lb-b.example.net.",)
    assert "CNAME holds one target" in d.reason


def test_record_type_selects_endpoints_of_its_family() -> None:
    cfg = config({"a": ["127.0.1.1", "2001:db8::1"]},
                 [{"name": "x.example.test.", "type": "A", "policy": "latency"},
                  {"name": "x.example.test.", "type": "AAAA", "policy": "latency"}])
    a, aaaa = decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
    assert a.values == ("127.0.1.1",) and aaaa.values == ("2001:db8::1",)


def test_a_region_with_some_healthy_endpoints_serves_only_those() -> None:
    from failover.health import EndpointHealth, HealthSnapshot

    cfg = config({"a": ["127.0.1.1", "127.0.1.2"], "b": ["127.0.2.1"]}, [FAILOVER])
    snap = HealthSnapshot(at=1.0, endpoints={"a/127.0.1.1": EndpointHealth(False, "status 503")})
    [d] = decide_all(cfg, snap, Overrides(), {}, 1000.0)
    assert d.regions == ("a",) and d.values == ("127.0.1.2",)


def test_the_record_sets_asked_for_are_the_answering_decisions_with_their_name_ttl() -> None:
    cfg = config(REGIONS, [{**FAILOVER, "ttl": 45},
                           {**FAILOVER, "name": "shut.example.test.", "fail_mode": "closed"}])
    snap = snapshot(cfg, down={"b": 1.0})
    api = decide(cfg.records[0], region_views(cfg, cfg.records[0], snap, Overrides()),
                 Overrides(), None, 1000.0)
    snap = snapshot(cfg, down={"a": 1.0, "b": 1.0})
    shut = decide(cfg.records[1], region_views(cfg, cfg.records[1], snap, Overrides()),
                  Overrides(), None, 1000.0)
    assert desired_records([api, shut]) == [
        RecordSet.make("api.example.test.", "A", 45, ("127.0.1.1",))]


def test_every_fail_mode_says_each_regions_state() -> None:
    down = {"a": 1.0, "b": 2.0}
    states = ("a unhealthy since 00:00:01 after 3 failures: connect timeout; "
              "b unhealthy since 00:00:02 after 3 failures: connect timeout")
    assert run({**FAILOVER, "fail_mode": "closed"}, down=down).reason == (
        f"no answer (fail mode closed): {states}")
    assert run(FAILOVER, down=down).reason == (
        f"a serves: every region is out, failing open (answering as if healthy): {states}")
    both = {"name": "api.example.test.", "type": "A", "policy": "weighted",
            "weights": {"a": 1, "b": 1}, "fail_mode": "last_known_good"}
    d = run(both, down=down, previous=run(both))
    assert d.reason == ("a and b serve: last known good answer (fail mode "
                        f"last_known_good): {states}")
    assert d.shares == {"a": 0.5, "b": 0.5} and d.values == ("127.0.1.1", "127.0.2.1")


def test_failing_open_answers_every_address_of_the_region_not_only_the_healthy() -> None:
    cfg = config({"a": ["127.0.1.1", "127.0.1.2"], "b": ["127.0.2.1"]}, [FAILOVER])
    snap = snapshot(cfg, down={"a": 1.0, "b": 2.0})
    d = decide(cfg.records[0], region_views(cfg, cfg.records[0], snap, Overrides()),
               Overrides(), None, 1000.0)
    assert d.basis == "fail_open" and d.values == ("127.0.1.1", "127.0.1.2")


def test_records_sharing_one_decision_each_keep_their_own_name_and_key() -> None:
    cfg = config(REGIONS, [FAILOVER, {**FAILOVER, "name": "www.example.test."}])
    api, www = decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
    assert api.key == ("api.example.test.", "A") and www.key == ("www.example.test.", "A")
    assert www.name == "www.example.test." and www.values == api.values


def test_a_regions_view_says_which_endpoint_failed_last_and_keeps_the_drain() -> None:
    cfg = config({"a": ["127.0.1.1", "127.0.1.2"], "b": ["127.0.2.1"]}, [FAILOVER],
                 pools={"edge": {"a": [{"address": "127.0.9.1", "check": "web"}],
                                 "b": [{"address": "127.0.9.2", "check": "web"}]}})
    snap = HealthSnapshot(at=1000.0, endpoints={
        **snapshot(cfg).endpoints,
        "a/127.0.1.1": EndpointHealth(False, "refused"),  # since unknown
        "a/127.0.1.2": EndpointHealth(False, "timeout", since=0.5)})
    ov = Overrides(drained=frozenset({"a", "b"}))
    views = region_views(cfg, cfg.records[0], snap, ov)
    a, b = views["a"], views["b"]
    assert a.healthy is False and a.drained is True and a.since == 0.5
    assert a.reason == "all 2 endpoints unhealthy, last 127.0.1.2: timeout"
    assert b.healthy is True and b.drained is True and b.reason == ""
    # a pooled record sees its pool's endpoints in each region
    pooled = config({"a": ["127.0.1.1"], "b": ["127.0.2.1"]}, [{**FAILOVER, "pool": "edge"}],
                    pools={"edge": {"a": [{"address": "127.0.9.1", "check": "web"}],
                                    "b": [{"address": "127.0.9.2", "check": "web"}]}})
    views = region_views(pooled, pooled.records[0], snapshot(pooled), Overrides())
    assert views["a"].values == ("127.0.9.1",) and views["b"].all_values == ("127.0.9.2",)
