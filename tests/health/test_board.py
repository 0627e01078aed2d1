"""The health board: what status shows (reasons, since, latency), vantages, restarts."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from failover.config import Config
from failover.health import CheckState, EndpointHealth, HealthBoard, HealthSnapshot, Outcome

EP = "r/127.0.1.1"


def one_check(threshold: int = 2, percent: int = 18, **extra: Any) -> Config:
    """One endpoint checked by 'web' (HTTP), with a second, unchecked endpoint."""
    return Config.model_validate({
        "zone": "example.test.",
        "checks": {"web": {"type": "HTTP", "port": 80, "failure_threshold": threshold,
                           "vantage_threshold_percent": percent, **extra}},
        "regions": {"r": {"endpoints": [{"address": "127.0.1.1", "check": "web"},
                                        {"address": "127.0.1.2"}]}},
        "records": [{"name": "a.example.test.", "type": "A", "policy": "latency"}]})


def calculated(threshold: int | None = None) -> Config:
    checks: dict[str, Any] = {"a": {"type": "TCP", "port": 1, "failure_threshold": 1},
                              "b": {"type": "TCP", "port": 2, "failure_threshold": 1}}
    checks["both"] = {"type": "CALCULATED", "child_checks": ["a", "b"],
                      **({"health_threshold": threshold} if threshold is not None else {})}
    return Config.model_validate({
        "zone": "example.test.", "checks": checks,
        "regions": {"r": {"endpoints": [{"address": "127.0.1.1", "check": "both"}]}},
        "records": [{"name": "a.example.test.", "type": "A", "policy": "latency"}]})


def test_status_shows_the_latest_result_reason_latency_and_recent() -> None:
    board = HealthBoard(one_check())
    assert board.snapshot(0.0).endpoints[EP] == EndpointHealth(
        True, "not yet checked: new checks start healthy")
    assert board.observe(EP, "web", True, "HTTP 200", 10.0, latency_ms=40.0) is None
    h = board.snapshot(11.0).endpoints[EP]
    assert h == EndpointHealth(True, "HTTP 200", None, 40.0, (Outcome(10.0, True, "HTTP 200"),))
    assert board.latency(EP) == 40.0
    assert board.latency("r/127.0.1.2") is None
    assert board.latency("nowhere/1") is None
    # one failure under a threshold of 2: no flip, the status and its reason hold
    assert board.observe(EP, "web", False, "HTTP 503", 12.0) is None
    assert board.snapshot(13.0).endpoints[EP].reason == "HTTP 200"
    assert board.local_changes == 0
    t = board.observe(EP, "web", False, "HTTP 503", 14.0)
    assert t is not None and t.endpoint == EP
    assert t.health == EndpointHealth(False, "after 2 failures: HTTP 503", 14.0, 40.0, (
        Outcome(10.0, True, "HTTP 200"), Outcome(12.0, False, "HTTP 503"),
        Outcome(14.0, False, "HTTP 503")))
    assert t.previous.healthy and t.previous.since is None
    assert board.local_changes == 1
    # still down: since stays at the flip
    assert board.observe(EP, "web", False, "HTTP 500", 16.0) is None
    assert board.snapshot(17.0).endpoints[EP].since == 14.0
    assert board.snapshot(17.0).at == 17.0


def test_another_vantages_result_does_not_count_as_a_local_change() -> None:
    board = HealthBoard(one_check(threshold=1), vantages=("local", "eu"))
    board.observe(EP, "web", False, "refused", 1.0, vantage="eu")
    assert board.local_changes == 0
    assert board.state(EP, "web", "eu").healthy is False
    assert board.state(EP, "web").healthy is True
    assert board.local_states() == {} and board.export() == {}  # only this vantage's own
    board.observe(EP, "web", False, "refused", 2.0)
    assert board.local_changes == 1
    assert board.export() == {f"{EP}|web|local": board.state(EP, "web")}
    assert board.local_states() == {(EP, "web"): board.state(EP, "web")}


def test_vantages_are_named_in_the_reason_and_latency_is_their_median() -> None:
    board = HealthBoard(one_check(threshold=1, percent=50), vantages=("local", "eu", "ap"),
                        local_name="us")
    board.observe(EP, "web", True, "ok", 1.0, latency_ms=10.0)
    board.observe(EP, "web", True, "ok", 1.0, latency_ms=30.0, vantage="eu")
    board.observe(EP, "web", True, "ok", 1.0, latency_ms=20.0, vantage="ap")
    h = board.snapshot(2.0).endpoints[EP]
    assert (h.healthy, h.latency_ms) == (True, 20.0)
    assert h.reason == "3 of 3 vantages healthy, more than 50% needed"
    board.observe(EP, "web", False, "timeout", 3.0, vantage="eu")
    t = board.observe(EP, "web", False, "refused", 4.0)
    assert t is not None
    assert t.health.reason == ("1 of 3 vantages healthy, more than 50% needed "
                               "(us: after 1 failure: refused; eu: after 1 failure: timeout)")
    assert t.health.since == 4.0
    assert t.health.recent == board.state(EP, "web").recent  # this vantage's own results
    assert t.health.latency_ms == 20.0  # failures leave the smoothed latency alone


def test_calculated_reason_names_the_children_down_and_takes_their_lowest_latency() -> None:
    board = HealthBoard(calculated(threshold=1))
    board.observe(EP, "a", True, "ok", 1.0, latency_ms=30.0)
    board.observe(EP, "b", True, "ok", 1.0, latency_ms=12.0)
    h = board.snapshot(2.0).endpoints[EP]
    assert h == EndpointHealth(True, "2 of 2 child checks healthy, 1 needed", None, 12.0)
    board.observe(EP, "a", False, "refused", 3.0)
    # healthy still: the children down are not listed
    assert board.snapshot(4.0).endpoints[EP].reason == "1 of 2 child checks healthy, 1 needed"
    t = board.observe(EP, "b", False, "reset", 5.0)
    assert t is not None
    assert t.health.reason == ("0 of 2 child checks healthy, 1 needed "
                               "(a: after 1 failure: refused; b: after 1 failure: reset)")
    assert t.health.latency_ms == 12.0


def test_calculated_without_a_threshold_needs_every_child() -> None:
    board = HealthBoard(calculated())
    t = board.observe(EP, "a", False, "refused", 1.0)
    assert t is not None and t.health.reason == (
        "1 of 2 child checks healthy, 2 needed (a: after 1 failure: refused)")


def test_a_disabled_check_is_healthy_and_says_so() -> None:
    board = HealthBoard(one_check(threshold=1, disabled=True))
    assert board.observe(EP, "web", False, "refused", 1.0) is None
    assert board.snapshot(2.0).endpoints[EP] == EndpointHealth(True, "check disabled")
    assert board.snapshot(2.0).endpoints["r/127.0.1.2"] == EndpointHealth(
        True, "no health check: always healthy")


def down_state(at: float) -> CheckState:
    return CheckState(False, at, 0, "after 3 failures: refused", (Outcome(at, False, "refused"),))


def test_a_restart_continues_from_the_kept_state_machines() -> None:
    cfg = one_check()
    before = HealthBoard(cfg)
    for at in (1.0, 2.0):
        before.observe(EP, "web", False, "refused", at)
    kept, snap = before.export(), before.snapshot(3.0)
    assert snap.endpoints[EP].since == 2.0
    after = HealthBoard(cfg)
    after.restore(kept | {"gone/1|web|local": down_state(1.0), f"{EP}|gone|local": down_state(1.0)},
                  snap)
    assert after.snapshot(4.0).endpoints[EP] == snap.endpoints[EP]
    assert after.state(EP, "web") == before.state(EP, "web")
    assert after.export() == kept  # entries for what the config no longer has are dropped
    # one more failure is not a new flip; a success under the threshold does not flip back
    assert after.observe(EP, "web", False, "refused", 5.0) is None
    assert after.observe(EP, "web", True, "ok", 6.0) is None


def test_a_restart_without_a_matching_snapshot_does_not_invent_a_since() -> None:
    cfg = one_check()
    states = {f"{EP}|web|local": down_state(1.0)}
    board = HealthBoard(cfg)
    board.restore(states, None)
    assert board.snapshot(2.0).endpoints[EP] == EndpointHealth(
        False, "after 3 failures: refused", None, None, (Outcome(1.0, False, "refused"),))
    # the kept snapshot says healthy: its since is not this status's since
    board = HealthBoard(cfg)
    board.restore(states, HealthSnapshot(0.0, {EP: EndpointHealth(True, "ok", since=0.5)}))
    assert board.snapshot(2.0).endpoints[EP].since is None
    board = HealthBoard(cfg)
    board.restore(states, HealthSnapshot(0.0, {EP: EndpointHealth(False, "x", since=0.5)}))
    assert board.snapshot(2.0).endpoints[EP].since == 0.5


def test_other_vantages_views_flip_an_endpoint_and_expire() -> None:
    board = HealthBoard(one_check(threshold=1, percent=50), local_name="us")
    assert board.snapshot(0.0).endpoints[EP].reason == "not yet checked: new checks start healthy"
    board.observe(EP, "web", False, "refused", 1.0)
    assert board.snapshot(1.0).endpoints[EP].since == 1.0
    up = CheckState(True, None, 0, "ok", (), 7.0)
    flips = board.set_remote({"eu": {(EP, "web"): up}, "ap": {(EP, "web"): up,
                                                              ("nowhere/1", "web"): up,
                                                              (EP, "gone"): up}}, 5.0)
    assert [(f.endpoint, f.health.healthy, f.health.since, f.previous.healthy) for f in flips] \
        == [(EP, True, 5.0, False)]
    assert flips[0].health.reason == ("2 of 3 vantages healthy, more than 50% needed "
                                      "(us: after 1 failure: refused)")
    assert board.state(EP, "gone", "ap") == CheckState()
    assert board.state("nowhere/1", "web", "ap") == CheckState()
    # the same views again: no flip, since kept
    assert board.set_remote({"eu": {(EP, "web"): up}, "ap": {(EP, "web"): up}}, 9.0) == []
    assert board.snapshot(9.0).endpoints[EP].since == 5.0
    # the other vantages expire: this one alone decides again
    flips = board.set_remote({}, 12.0)
    assert [(f.endpoint, f.health.healthy, f.health.since) for f in flips] == [(EP, False, 12.0)]
    assert board.snapshot(12.0).endpoints[EP].reason == "after 1 failure: refused"
    assert board.state(EP, "web", "eu") == CheckState()
    assert board.local_changes == 1


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=12))
def test_a_restart_at_any_point_decides_as_if_it_never_happened(
        results: list[tuple[bool, bool]]) -> None:
    cfg = one_check()
    kept_running, restarted = HealthBoard(cfg), HealthBoard(cfg)
    for i, (ok, restart_here) in enumerate(results):
        at = float(i + 1)
        kept_running.observe(EP, "web", ok, "r", at, latency_ms=float(i))
        restarted.observe(EP, "web", ok, "r", at, latency_ms=float(i))
        if restart_here:
            fresh = HealthBoard(cfg)
            fresh.restore(restarted.export(), restarted.snapshot(at))
            restarted = fresh
        assert restarted.snapshot(at) == kept_running.snapshot(at)


def test_every_local_flip_counts_down_and_up_again() -> None:
    board = HealthBoard(one_check(threshold=1))
    board.observe(EP, "web", False, "refused", 1.0)
    board.observe(EP, "web", True, "HTTP 200", 2.0)
    assert board.local_changes == 2


def test_a_kept_key_with_more_separators_than_expected_does_not_stop_a_restart() -> None:
    # a store can hold anything: a key with a '|' too many is no reason to crash
    board = HealthBoard(one_check())
    board.restore({f"{EP}|web|local": down_state(1.0), f"{EP}|web|local|odd": down_state(1.0)},
                  None)
    assert board.snapshot(2.0).endpoints[EP].healthy is False


@given(st.integers(1, 10), st.sampled_from([0, 18, 50, 99]),
       st.lists(st.tuples(st.booleans(), st.sampled_from(["status 200", "status 503",
                                                          "connection refused"]),
                          st.one_of(st.none(), st.floats(0, 500))), max_size=30))
def test_a_plain_check_is_followed_as_evaluating_it_would(threshold: int, percent: int,
                                                         results: list[Any]) -> None:
    """The shortcut for one leaf at one vantage says what the full evaluation says."""
    fast, full = HealthBoard(one_check(threshold, percent)), HealthBoard(one_check(threshold,
                                                                                   percent))
    full._plain = {}  # every result evaluated in full
    for i, (ok, reason, latency) in enumerate(results):
        at = 100.0 + i
        flips = [b.observe(EP, "web", ok, reason, at, latency) for b in (fast, full)]
        assert flips[0] == flips[1]
        assert fast.snapshot(at) == full.snapshot(at)
        assert fast.version == full.version
