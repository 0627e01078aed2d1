"""Latency routing at its boundaries: hysteresis (percent and ms), the hold, the reasons."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from policies.latency import choose_latency
from policies.model import Basis, Choice, Decision, RegionView


def views(lat: dict[str, float | None], down: tuple[str, ...] = (),
          drained: tuple[str, ...] = ()) -> dict[str, RegionView]:
    return {r: RegionView(r, r not in down, (f"v-{r}",), (f"v-{r}",), None,
                          "after 3 failures: refused" if r in down else "", ms,
                          drained=r in drained)
            for r, ms in lat.items()}


def serving(region: str, at: float = 0.0, changed_at: float | None = None,
            basis: Basis = "health") -> Decision:
    return Decision("a.example.test.", "A", 60, "latency", (region,), (f"v-{region}",),
                    {region: 1.0}, basis, "", at, changed_at=changed_at)


def pick(lat: dict[str, float | None], previous: Decision | None = None, percent: float = 0.0,
         ms: float = 0.0, min_hold: float = 0.0, now: float = 100.0,
         down: tuple[str, ...] = (), drained: tuple[str, ...] = ()) -> Choice | None:
    return choose_latency(list(lat), views(lat, down, drained), percent, previous, ms,
                          min_hold=min_hold, now=now)


def test_the_lowest_latency_answers_and_the_reason_lists_the_others() -> None:
    c = pick({"a": 40.0, "b": 12.25, "c": None, "d": 20.0})
    assert c == Choice(("b",), {"b": 1.0},
                       "b serves: lowest latency 12.2 ms (a 40.0 ms, d 20.0 ms)")
    c = pick({"a": 40.0, "b": 12.0}, down=("b",), drained=())
    assert c is not None and c.reason == (
        "a serves: lowest latency 40.0 ms; b unhealthy after 3 failures: refused")
    assert pick({"a": 5.0}, drained=("a",)) is None
    assert pick({"a": 5.0, "b": 9.0}, drained=("a",)) == Choice(
        ("b",), {"b": 1.0}, "b serves: lowest latency 9.0 ms; a drained by operator")


def test_unmeasured_regions_rank_last_then_in_config_order() -> None:
    assert pick({"a": None, "b": 30.0, "c": 30.0}).regions == ("b",)  # type: ignore[union-attr]
    c = pick({"a": None, "b": None})
    assert c == Choice(("a",), {"a": 1.0},
                       "a serves: no latency measured yet, first healthy region in order")
    c = pick({"a": None, "b": None}, previous=serving("b"))
    assert c == Choice(("b",), {"b": 1.0},
                       "b serves: no latency measured, keeping the current answer")
    assert pick({"a": 0.0, "b": None}).regions == ("a",)  # type: ignore[union-attr]


def test_percent_hysteresis_holds_up_to_its_boundary_and_moves_past_it() -> None:
    held = pick({"a": 100.0, "b": 90.0}, serving("a"), percent=10)
    assert held == Choice(("a",), {"a": 1.0}, "a serves: 100.0 ms, within 10% or 0 ms of b at "
                          "90.0 ms (hysteresis)", basis="hold")
    moved = pick({"a": 100.0, "b": 89.9}, serving("a"), percent=10)
    assert moved is not None and moved.regions == ("b",) and moved.basis == "health"


def test_ms_hysteresis_holds_up_to_its_boundary_and_moves_past_it() -> None:
    held = pick({"a": 20.0, "b": 15.0}, serving("a"), ms=5)
    assert held is not None and held.regions == ("a",) and held.basis == "hold"
    assert held.reason == "a serves: 20.0 ms, within 0% or 5 ms of b at 15.0 ms (hysteresis)"
    assert pick({"a": 20.0, "b": 14.9}, serving("a"), ms=5).regions == ("b",)  # type: ignore[union-attr]


def test_hysteresis_applies_only_to_an_answer_chosen_for_health() -> None:
    for basis in ("pinned", "fail_open", "last_known_good"):
        c = pick({"a": 20.0, "b": 19.0}, serving("a", basis=basis), percent=50, ms=50)  # type: ignore[arg-type]
        assert c is not None and c.regions == ("b",)
    c = pick({"a": 20.0, "b": 19.0}, serving("a", basis="hold"), percent=50)
    assert c is not None and c.regions == ("a",)
    # the current region unusable: no hysteresis, no hold
    c = pick({"a": 20.0, "b": 25.0, "c": 19.0}, serving("a"), percent=50, min_hold=300,
             down=("a",))
    assert c is not None and c.regions == ("c",)


def test_the_min_hold_ends_exactly_when_it_says() -> None:
    lat = {"a": 30.0, "b": 10.0}
    held = pick(lat, serving("a", at=50.0, changed_at=40.0), min_hold=60, now=99.5)
    assert held == Choice(("a",), {"a": 1.0}, "a serves: 30.0 ms; b is faster at 10.0 ms, but "
                          "the answer changed 60 s ago and is held 60 s (latency_min_hold)",
                          basis="hold", hold_until=100.0)
    moved = pick(lat, serving("a", at=50.0, changed_at=40.0), min_hold=60, now=100.0)
    assert moved is not None and moved.regions == ("b",)
    # without changed_at the hold counts from the decision's time
    held = pick(lat, serving("a", at=50.0), min_hold=60, now=109.0)
    assert held is not None and held.basis == "hold" and held.hold_until == 110.0
    assert pick(lat, serving("a", at=50.0), min_hold=60, now=110.0).regions == ("b",)  # type: ignore[union-attr]


@given(st.dictionaries(st.sampled_from("abcd"), st.none() | st.floats(0, 500), min_size=1),
       st.sets(st.sampled_from("abcd")), st.floats(0, 50), st.floats(0, 20))
def test_a_move_is_to_the_fastest_usable_region_and_never_to_an_unusable_one(
        lat: dict[str, float | None], down: set[str], percent: float, ms: float) -> None:
    regions = sorted(lat)
    v = views({r: lat[r] for r in regions}, tuple(down))
    live = [r for r in regions if r not in down]
    for previous in [None, *(serving(r) for r in regions)]:
        c = choose_latency(regions, v, percent, previous, ms, min_hold=0.0, now=0.0)
        if not live:
            assert c is None
            continue
        assert c is not None and len(c.regions) == 1 and c.regions[0] in live
        if c.basis == "health" and (previous is None or previous.regions[0] not in live):
            measured = [lat[r] for r in live if lat[r] is not None]
            assert lat[c.regions[0]] == (min(measured) if measured else None)


def test_a_region_measured_at_zero_ms_is_the_fastest_and_every_region_out_is_named() -> None:
    c = pick({"b": 0.5, "a": 0.0, "x": 9.0, "y": 9.0}, down=("x", "y"))
    assert c is not None and c.regions == ("a",)
    assert c.reason.endswith("; x unhealthy after 3 failures: refused; "
                             "y unhealthy after 3 failures: refused"), c.reason


def test_without_hysteresis_hold_or_clock_given_the_fastest_answers_at_once() -> None:
    # the defaults: no hysteresis, no hold, time 0 (a plan of one instant)
    c = choose_latency(["a", "b"], views({"a": 20.0, "b": 19.9}), 0.0,
                       serving("a", at=0.0, changed_at=0.0))
    assert c is not None and c.regions == ("b",) and c.basis == "health"
