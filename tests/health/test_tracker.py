"""Route 53's threshold state machine, vantage quorum and CALCULATED checks."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from failover.config import Config
from failover.health import CheckState, HealthBoard, Outcome, observe, vantage_healthy


def run(results: list[bool], threshold: int) -> list[CheckState]:
    states, s = [], CheckState()
    for i, ok in enumerate(results):
        s = observe(s, ok, "ok" if ok else "connect timeout", float(i), threshold)
        states.append(s)
    return states


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 10))
def test_status_flips_only_after_threshold_opposite_results(results: list[bool],
                                                             threshold: int) -> None:
    # oracle: status changes exactly when the run of opposite results reaches threshold
    status, run_len = True, 0
    for ok, state in zip(results, run(results, threshold), strict=True):
        run_len = 0 if ok == status else run_len + 1
        if run_len == threshold:
            status, run_len = ok, 0
        assert state.healthy == status
        assert state.streak == run_len


@given(st.integers(1, 10), st.integers(0, 10))
def test_no_flip_before_n_failures_then_flip_with_reason(threshold: int, extra: int) -> None:
    states = run([False] * (threshold - 1), threshold)
    assert all(s.healthy for s in states)
    s = run([False] * threshold, threshold)[-1]
    assert not s.healthy and s.since == float(threshold - 1)
    word = "failure" if threshold == 1 else "failures"
    assert s.reason == f"after {threshold} {word}: connect timeout"
    # and back: N-1 successes keep it unhealthy, the Nth flips it
    back = run([False] * threshold + [True] * (threshold - 1), threshold)[-1]
    assert not back.healthy
    assert run([False] * threshold + [True] * threshold, threshold)[-1].healthy


def test_latency_is_smoothed() -> None:
    s = observe(CheckState(), True, "ok", 0.0, 3, latency_ms=10.0)
    assert s.latency_ms == 10.0
    s = observe(s, True, "ok", 1.0, 3, latency_ms=20.0)
    assert s.latency_ms == 13.0  # 0.3 * 20 + 0.7 * 10
    s = observe(s, False, "timeout", 2.0, 3)
    assert s.latency_ms == 13.0  # failures carry no latency


def test_recent_results_are_kept_newest_last() -> None:
    s = run([True, False, True, True, False, False, True], 3)[-1]
    assert [o.ok for o in s.recent] == [True, True, False, False, True]


@given(st.integers(0, 20), st.integers(1, 20), st.integers(0, 99))
def test_vantage_quorum_uses_integer_maths(healthy: int, total: int, percent: int) -> None:
    healthy = min(healthy, total)
    # exact rational comparison: no float rounding at the boundary
    assert vantage_healthy(healthy, total, percent) == (Fraction(healthy, total) >
                                                        Fraction(percent, 100))


def test_route53_18_percent_with_16_checkers() -> None:
    assert not vantage_healthy(2, 16, 18)  # 12.5%
    assert vantage_healthy(3, 16, 18)  # 18.75%


def calculated(n: int, threshold: int | None, inverted: bool = False) -> Config:
    children = [f"c{i}" for i in range(n)]
    checks = {c: {"type": "TCP", "port": 1000 + i, "failure_threshold": 1}
              for i, c in enumerate(children)}
    checks["all"] = {"type": "CALCULATED", "child_checks": children, "inverted": inverted,
                     **({"health_threshold": threshold} if threshold is not None else {})}
    return Config.model_validate({
        "zone": "example.test.", "checks": checks,
        "regions": {"r": {"endpoints": [{"address": "127.0.1.1", "check": "all"}]}},
        "records": [{"name": "a.example.test.", "type": "A", "policy": "latency"}]})


@given(st.lists(st.booleans(), min_size=1, max_size=6), st.integers(0, 8))
def test_calculated_follows_its_threshold(children: list[bool], threshold: int) -> None:
    cfg = calculated(len(children), threshold)
    board = HealthBoard(cfg)
    for i, ok in enumerate(children):
        board.observe("r/127.0.1.1", f"c{i}", ok, "x", 1.0)
    health = board.snapshot(2.0).endpoints["r/127.0.1.1"]
    assert health.healthy == (sum(children) >= threshold)
    if threshold == 0:
        assert health.healthy
    if threshold > len(children):
        assert not health.healthy


def test_board_reports_transitions_with_time_and_reason() -> None:
    cfg = calculated(1, None)
    board = HealthBoard(cfg)
    t = board.observe("r/127.0.1.1", "c0", False, "connection refused", 100.0)
    assert t is not None and not t.health.healthy and t.previous.healthy
    assert t.health.since == 100.0
    assert "c0: after 1 failure: connection refused" in t.health.reason
    assert board.observe("r/127.0.1.1", "c0", False, "connection refused", 101.0) is None
    assert board.snapshot(102.0).endpoints["r/127.0.1.1"].since == 100.0


def test_inverted_calculated_starts_unhealthy_and_flips() -> None:
    board = HealthBoard(calculated(2, 1, inverted=True))
    assert not board.snapshot(0.0).endpoints["r/127.0.1.1"].healthy
    board.observe("r/127.0.1.1", "c0", False, "refused", 1.0)
    t = board.observe("r/127.0.1.1", "c1", False, "refused", 2.0)
    assert t is not None and t.health.healthy and t.health.reason.startswith("inverted: ")


def test_reasons_say_what_status_rests_on() -> None:
    s = observe(CheckState(), True, "HTTP 200", 1.0, 2)
    assert (s.reason, s.since) == ("HTTP 200", None)  # before any flip: the latest result
    s = observe(s, False, "HTTP 503", 2.0, 2)
    assert (s.healthy, s.streak, s.reason) == (True, 1, "HTTP 200")
    s = observe(s, False, "HTTP 500", 3.0, 2)
    assert (s.healthy, s.since, s.streak, s.reason) == (False, 3.0, 0,
                                                        "after 2 failures: HTTP 500")
    s = observe(s, False, "refused", 4.0, 2)
    assert s.reason == "after 2 failures: HTTP 500"  # after a flip: what flipped it
    s = observe(s, True, "HTTP 200", 5.0, 2)
    assert (s.healthy, s.streak, s.reason) == (False, 1, "after 2 failures: HTTP 500")
    s = observe(s, True, "HTTP 204", 6.0, 2)
    assert (s.healthy, s.since, s.reason) == (True, 6.0, "after 2 successes: HTTP 204")
    assert observe(observe(CheckState(), False, "x", 1.0, 1), True, "ok", 2.0, 1).reason \
        == "after 1 success: ok"


def test_recent_holds_the_last_five_results_with_their_times() -> None:
    s = CheckState()
    for i in range(7):
        s = observe(s, i % 2 == 0, f"r{i}", float(i), 3)
        assert [o.at for o in s.recent] == [float(j) for j in range(max(0, i - 4), i + 1)]
    assert s.recent[-1] == Outcome(6.0, True, "r6")


def test_latency_comes_from_successes_that_measured_it() -> None:
    s = observe(CheckState(), True, "ok", 0.0, 3)
    assert s.latency_ms is None
    s = observe(s, False, "timeout", 1.0, 3, latency_ms=5000.0)
    assert s.latency_ms is None  # a failure's time says nothing about latency
    s = observe(s, True, "ok", 2.0, 3, latency_ms=50.0)
    s = observe(s, True, "ok", 3.0, 3)
    assert s.latency_ms == 50.0


def test_since_stays_the_flips_time_through_agreeing_and_isolated_results() -> None:
    # down at t=1 (threshold 2), then a failure, a lone success, a failure: still down
    # since 1, with the reason of the flip
    states = run([False, False, False, True, False], 2)
    assert [s.since for s in states[1:]] == [1.0, 1.0, 1.0, 1.0]
    assert states[-1].reason == "after 2 failures: connect timeout"
    assert states[3].streak == 1 and not states[3].healthy
