"""Properties of the policy engine over random configs, health and overrides."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from policies import decide, region_views
from policies.model import Decision
from tests.strategies import Scenario, scenarios, snapshots


def decide_in(s: Scenario, previous: Decision | None = None, now: float = 10_000.0) -> Decision:
    views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
    return decide(s.record, views, s.overrides, previous, now)


@given(scenarios())
def test_fail_open_never_gives_an_empty_answer(s: Scenario) -> None:
    d = decide_in(s)
    if s.record.fail_mode != "closed":
        assert d.values, d.reason
    else:
        assert d.values or d.basis == "closed"


@given(scenarios(), st.data())
def test_a_sequence_of_ticks_never_gives_an_empty_answer(s: Scenario, data: st.DataObject) -> None:
    # one record through changing health, each tick remembering the last decision
    previous = None
    for tick in range(data.draw(st.integers(2, 8))):
        snap = data.draw(snapshots(s.cfg, now=10_000.0 + tick))
        d = decide_in(replace(s, snapshot=snap), previous, now=10_000.0 + tick)
        if s.record.fail_mode != "closed":
            assert d.values, d.reason
        if d.basis == "last_known_good":
            assert previous is not None and d.values == previous.last_good[1]
        previous = d


@given(scenarios(pins=False))
def test_served_values_belong_to_the_served_regions(s: Scenario) -> None:
    d = decide_in(s)
    allowed = {ep.address for r in d.regions for ep in s.cfg.regions[r].endpoints}
    assert set(d.values) <= allowed
    if d.regions:
        assert abs(sum(d.shares.values()) - 1.0) < 1e-9
    if d.basis == "health":
        # only healthy endpoints of healthy, undrained regions answer on health
        views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
        assert all(views[r].usable for r in d.regions)
        assert set(d.values) <= {v for r in d.regions for v in views[r].values}


@given(scenarios(policy="failover", pins=False))
def test_failover_answers_with_the_first_healthy_tier(s: Scenario) -> None:
    views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
    d = decide_in(s)
    live_tiers = [i for i, tier in enumerate(s.record.tiers) if any(views[r].usable for r in tier)]
    if live_tiers:
        first = live_tiers[0]
        assert d.tier == first and d.basis == "health"
        tier = s.record.tiers[first]
        assert set(d.regions) == {r for r in tier if views[r].usable}
        assert set(d.values) == {v for r in tier if views[r].usable for v in views[r].values}
    else:
        assert d.basis in ("fail_open", "last_known_good", "closed")


@given(scenarios(policy="weighted", pins=False))
def test_weighted_shares_follow_the_weights(s: Scenario) -> None:
    views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
    weights = s.record.weights
    d = decide_in(s)
    live = [r for r in weights if views[r].usable]
    heavy = [r for r in live if weights[r] > 0]
    if heavy:
        total = sum(weights[r] for r in heavy)
        assert d.shares == {r: weights[r] / total for r in heavy}
    elif live:
        assert d.shares == {r: 1 / len(live) for r in live}
    else:
        assert d.basis != "health"


@given(scenarios(policy="latency", pins=False))
def test_latency_serves_one_region_the_fastest_usable(s: Scenario) -> None:
    views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
    d = decide_in(s)
    live = [r for r in views if views[r].usable]
    assert len(d.regions) <= 1
    measured = [views[r].latency_ms for r in live if views[r].latency_ms is not None]
    if live and measured:
        assert views[d.regions[0]].latency_ms == min(measured)


@given(scenarios(pins=False))
def test_a_drained_region_never_serves_while_another_is_usable(s: Scenario) -> None:
    views = region_views(s.cfg, s.record, s.snapshot, s.overrides)
    d = decide_in(s)
    if any(v.usable for v in views.values()):
        assert not set(d.regions) & s.overrides.drained


@given(scenarios(), st.data())
def test_records_sharing_a_shape_are_decided_as_each_would_be_alone(
        s: Scenario, data: st.DataObject) -> None:
    # decide_all makes one decision per shape and previous answer, and copies it: the
    # copies must equal what deciding each record on its own gives
    from policies import decide_all

    spec = s.cfg.records[0].model_dump()
    names = [f"n{i}.example.test." for i in range(6)]
    cfg = s.cfg.model_validate({**s.cfg.model_dump(), "records": [
        {**spec, "name": n} for n in names]})
    previous: dict[tuple[str, str], Decision] = {}
    for tick in range(data.draw(st.integers(1, 4))):
        snap = data.draw(snapshots(cfg, now=10_000.0 + tick))
        pinned = next(iter(s.overrides.pinned.values()), None)  # a pin moves to names[0]
        ov = replace(s.overrides, pinned={names[0]: pinned} if pinned else {})
        together = decide_all(cfg, snap, ov, previous, 10_000.0 + tick)
        alone = [decide(r, region_views(cfg, r, snap, ov), ov, previous.get((r.name, r.type)),
                        10_000.0 + tick) for r in cfg.records]
        assert together == alone
        # the next tick remembers a mix: some records with a previous decision, some not
        keep = data.draw(st.lists(st.sampled_from(names), unique=True))
        previous = {d.key: d for d in together if d.name in keep}
