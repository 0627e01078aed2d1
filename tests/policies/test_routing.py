"""Routing policies: failover tiers and failback, weighted shares, latency with hysteresis."""

from __future__ import annotations

from dataclasses import replace

from policies import Overrides, decide, region_views
from policies.model import Decision
from tests.builders import config, snapshot

REGIONS = {"a": ["127.0.1.1", "127.0.1.2"], "b": ["127.0.2.1"], "c": ["127.0.3.1"],
           "d": ["127.0.4.1"]}


def run(record: dict, down: dict[str, float] | None = None, previous: Decision | None = None,
        now: float = 1000.0, overrides: Overrides | None = None, **snap: dict) -> Decision:
    rec = {"name": "api.example.test.", "type": "A", **record}
    cfg = config(REGIONS, [rec])
    ov = overrides or Overrides()
    views = region_views(cfg, cfg.records[0], snapshot(cfg, down, now=now, **snap), ov)
    return decide(cfg.records[0], views, ov, previous, now)


def test_failover_serves_first_tier_while_healthy() -> None:
    d = run({"policy": "failover", "order": ["a", "b"]})
    assert d.regions == ("a",) and d.values == ("127.0.1.1", "127.0.1.2")
    assert d.basis == "health" and d.tier == 0
    assert d.reason == "a serves: first tier healthy"


def test_failover_moves_to_next_tier_and_says_why() -> None:
    d = run({"policy": "failover", "order": ["a", "b"]}, down={"a": 43203.0})
    assert d.values == ("127.0.2.1",) and d.tier == 1
    assert d.reason == "b serves: a unhealthy since 12:00:03 after 3 failures: connect timeout"


def test_failover_any_number_of_tiers_and_multi_region_tiers() -> None:
    order = ["a", ["b", "c"], "d"]
    d = run({"policy": "failover", "order": order}, down={"a": 1.0})
    assert d.regions == ("b", "c") and d.values == ("127.0.2.1", "127.0.3.1")
    assert d.shares == {"b": 0.5, "c": 0.5}
    d = run({"policy": "failover", "order": order}, down={"a": 1.0, "b": 1.0})
    assert d.regions == ("c",) and d.tier == 1
    d = run({"policy": "failover", "order": order}, down={"a": 1.0, "b": 1.0, "c": 1.0})
    assert d.regions == ("d",) and d.tier == 2


def test_failback_waits_for_the_delay_then_returns() -> None:
    rec = {"policy": "failover", "order": ["a", "b"], "failback_delay": 60}
    on_b = run(rec, down={"a": 900.0}, now=950.0)
    assert on_b.regions == ("b",)
    # a recovered at t=1000; at 1030 the delay still holds b
    held = run(rec, previous=on_b, now=1030.0, up_since={"a": 1000.0})
    assert held.regions == ("b",) and held.basis == "hold"
    assert "failback to a in 30 s" in held.reason
    # after 60 s healthy, a serves again
    back = run(rec, previous=held, now=1061.0, up_since={"a": 1000.0})
    assert back.regions == ("a",) and back.basis == "health"


def test_failback_returns_exactly_when_the_delay_has_passed_not_a_second_early() -> None:
    rec = {"policy": "failover", "order": ["a", "b"], "failback_delay": 60}
    on_b = run(rec, down={"a": 900.0}, now=950.0)
    # a recovered at t=1000: half a second before the delay ends, b still answers
    held = run(rec, previous=on_b, now=1059.5, up_since={"a": 1000.0})
    assert held.regions == ("b",) and held.basis == "hold"
    # at the very moment the delay ends, a answers again
    back = run(rec, previous=held, now=1060.0, up_since={"a": 1000.0})
    assert back.regions == ("a",) and back.basis == "health"


def test_failback_delay_does_not_hold_an_unhealthy_backup() -> None:
    rec = {"policy": "failover", "order": ["a", "b"], "failback_delay": 60}
    on_b = run(rec, down={"a": 900.0}, now=950.0)
    d = run(rec, previous=on_b, down={"b": 1010.0}, now=1020.0, up_since={"a": 1000.0})
    assert d.regions == ("a",)


def test_weighted_shares_follow_weights_and_drop_unhealthy() -> None:
    rec = {"policy": "weighted", "weights": {"a": 70, "b": 30, "c": 0}}
    d = run(rec)
    assert d.regions == ("a", "b") and d.shares == {"a": 0.7, "b": 0.3}
    assert d.values == ("127.0.1.1", "127.0.1.2", "127.0.2.1")
    d = run(rec, down={"a": 1.0})
    assert d.shares == {"b": 1.0}
    assert "a unhealthy" in d.reason


def test_zero_weight_serves_only_when_every_weighted_region_is_out() -> None:
    rec = {"policy": "weighted", "weights": {"a": 70, "b": 30, "c": 0}}
    d = run(rec, down={"a": 1.0, "b": 1.0})
    assert d.regions == ("c",) and d.basis == "health"
    assert "zero-weight" in d.reason


def test_all_zero_weights_split_equally() -> None:
    d = run({"policy": "weighted", "weights": {"a": 0, "b": 0}})
    assert d.shares == {"a": 0.5, "b": 0.5}
    assert "all weights are 0" in d.reason


def test_latency_picks_the_lowest_healthy() -> None:
    rec = {"policy": "latency", "regions": ["a", "b", "c"]}
    d = run(rec, latency={"a": 40.0, "b": 12.0, "c": 20.0})
    assert d.regions == ("b",) and "lowest latency 12.0 ms" in d.reason
    d = run(rec, down={"b": 1.0}, latency={"a": 40.0, "b": 12.0, "c": 20.0})
    assert d.regions == ("c",)


def test_latency_hysteresis_keeps_the_current_region() -> None:
    rec = {"policy": "latency", "regions": ["a", "b"], "latency_hysteresis_percent": 10,
           "latency_hysteresis_ms": 0, "latency_min_hold": 0}
    first = run(rec, latency={"a": 20.0, "b": 30.0})
    assert first.regions == ("a",)
    # b is now faster, but by less than 10%: stay on a
    held = run(rec, previous=first, latency={"a": 20.0, "b": 18.5})
    assert held.regions == ("a",) and held.basis == "hold"
    # by more than 10%: move
    moved = run(rec, previous=held, latency={"a": 20.0, "b": 17.0})
    assert moved.regions == ("b",)


def test_latency_hysteresis_has_an_absolute_floor() -> None:
    # at sub-millisecond latencies a 10% difference is noise: 5 ms is the default floor
    rec = {"policy": "latency", "regions": ["a", "b"], "latency_min_hold": 0}
    first = run(rec, latency={"a": 0.6, "b": 0.9})
    held = run(rec, previous=first, latency={"a": 0.6, "b": 0.3})
    assert held.regions == ("a",) and held.basis == "hold"
    moved = run(rec, previous=held, latency={"a": 20.0, "b": 3.0})
    assert moved.regions == ("b",)


def test_latency_jitter_moves_the_answer_at_most_once_per_ttl() -> None:
    import random

    rng = random.Random(7)
    rec = {"policy": "latency", "regions": ["a", "b"], "ttl": 30}
    d, flips, last = None, 0, 0
    for second in range(600):  # ten minutes of two regions whose latencies cross all the time
        lat = {"a": 20.0 + rng.uniform(-8, 8), "b": 20.0 + rng.uniform(-8, 8)}
        nxt = run(rec, previous=d, now=1000.0 + second, latency=lat)
        if d is not None and nxt.regions != d.regions:
            flips += 1
            assert nxt.changed_at == 1000.0 + second
            assert second - last >= 30, f"moved again after {second - last} s"
        if d is None or nxt.regions != d.regions:
            last = second
        d = nxt
    assert 1 <= flips <= 600 // 30
    # without the hold, the same jitter moves it several times as often
    d, unheld, rng = None, 0, random.Random(7)
    for second in range(600):
        lat = {"a": 20.0 + rng.uniform(-8, 8), "b": 20.0 + rng.uniform(-8, 8)}
        nxt = run({**rec, "latency_min_hold": 0}, previous=d, now=1000.0 + second, latency=lat)
        unheld += d is not None and nxt.regions != d.regions
        d = nxt
    assert unheld > 2 * flips


def test_latency_min_hold_never_delays_a_health_move() -> None:
    rec = {"policy": "latency", "regions": ["a", "b"], "ttl": 300}
    first = run(rec, latency={"a": 10.0, "b": 30.0})
    down = run(rec, previous=first, now=1001.0, down={"a": 1000.5}, latency={"b": 30.0})
    assert down.regions == ("b",)


def test_latency_without_measurements_uses_config_order() -> None:
    d = run({"policy": "latency", "regions": ["c", "a"]})
    assert d.regions == ("c",)
    assert "no latency measured" in d.reason


TWO_BY_TWO = {"policy": "failover", "order": [["a", "b"], ["c", "d"]], "failback_delay": 60}


def on_second_tier(**fields: object) -> Decision:
    return replace(Decision(name="api.example.test.", type="A", ttl=60, policy="failover",
                            regions=("c", "d"), values=("127.0.3.1", "127.0.4.1"),
                            shares={"c": 0.5, "d": 0.5}, basis="health", reason="", at=900.0,
                            tier=1), **fields)  # type: ignore[arg-type]


def test_the_failback_hold_keeps_the_whole_tier_and_says_until_when() -> None:
    d = run(TWO_BY_TWO, previous=on_second_tier(), up_since={"a": 990.0, "b": 995.0})
    assert d.basis == "hold" and d.tier == 1 and d.regions == ("c", "d")
    assert d.shares == {"c": 0.5, "d": 0.5}
    assert d.reason == ("c and d serve: failback to a, b in 50 s (healthy since 00:16:30, "
                        "failback delay 60 s)")


def test_a_one_second_failback_delay_still_holds_for_its_second() -> None:
    d = run({**TWO_BY_TWO, "failback_delay": 1}, previous=on_second_tier(),
            up_since={"a": 999.5, "b": 999.5})
    assert d.basis == "hold" and d.regions == ("c", "d")


def test_no_hold_after_a_pin_an_unknown_tier_or_on_the_first_tier() -> None:
    back = {"a": 990.0, "b": 995.0}
    for previous in (on_second_tier(basis="pinned"), on_second_tier(tier=None),
                     on_second_tier(regions=("a", "b"), tier=0)):
        d = run(TWO_BY_TWO, previous=previous, up_since=back)
        assert d.basis == "health" and d.regions == ("a", "b"), previous


def test_a_single_tier_is_healthy_and_skipped_tiers_each_say_why() -> None:
    assert run({"policy": "failover", "order": ["a"]}).reason == "a serves: healthy"
    d = run({"policy": "failover", "order": [["a", "b"], ["c"]]}, down={"a": 1.0, "b": 2.0})
    assert d.reason == ("c serves: a unhealthy since 00:00:01 after 3 failures: connect "
                        "timeout; b unhealthy since 00:00:02 after 3 failures: connect timeout")
