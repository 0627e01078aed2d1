"""Stored decisions vetted against the config (policies/stored.py): whatever a store
gives back, a policy remembers only regions and addresses the config holds. Pure."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from failover.config import Config
from policies import Overrides, decide, region_views
from policies.model import Decision
from policies.stored import vet
from tests.builders import config, snapshot
from tests.strategies import Scenario, scenarios

NOW = 10_000.0


def cfg_lkg() -> Config:
    return config({"us-east-1": ["127.0.1.1"], "eu-west-1": ["127.0.2.1"]}, [{
        "name": "api.example.test.", "type": "A", "policy": "failover",
        "order": ["us-east-1", "eu-west-1"], "fail_mode": "last_known_good"}])


def stored(**fields: object) -> Decision:
    base = Decision(name="api.example.test.", type="A", ttl=60, policy="failover",
                    regions=("us-east-1",), values=("127.0.1.1",), shares={"us-east-1": 1.0},
                    basis="health", reason="first tier healthy", at=NOW - 60, tier=0,
                    last_good=(("us-east-1",), ("127.0.1.1",)), usable=("us-east-1",),
                    by_region={"us-east-1": ("127.0.1.1",)})
    return replace(base, **fields)  # type: ignore[arg-type]


def all_down(cfg: Config, previous: Decision | None) -> Decision:
    record = cfg.records[0]
    snap = snapshot(cfg, down={"us-east-1": NOW - 5, "eu-west-1": NOW - 5}, now=NOW)
    return decide(record, region_views(cfg, record, snap, Overrides()), Overrides(), previous,
                  NOW)


def test_a_poisoned_last_good_is_dropped_and_every_region_down_fails_open() -> None:
    cfg = cfg_lkg()
    poisoned = stored(last_good=(("us-east-1",), ("6.6.6.6",)))
    vetted = vet(cfg, {poisoned.key: poisoned}, NOW)
    kept = vetted.decisions[poisoned.key]
    assert kept.last_good is None
    assert vetted.dropped and "6.6.6.6" in vetted.dropped[0]
    assert "api.example.test. A" in vetted.dropped[0]
    d = all_down(cfg, kept)
    assert d.values == ("127.0.1.1",) and d.basis == "fail_open"
    # unvetted, the same memory is served as is: what the vetting is for
    assert all_down(cfg, poisoned).values == ("6.6.6.6",)


def test_a_good_memory_is_kept_whole_and_still_served_as_last_known_good() -> None:
    cfg = cfg_lkg()
    good = stored(regions=("eu-west-1",), values=("127.0.2.1",), shares={"eu-west-1": 1.0},
                  tier=1, last_good=(("eu-west-1",), ("127.0.2.1",)),
                  by_region={"eu-west-1": ("127.0.2.1",)}, usable=("eu-west-1",))
    vetted = vet(cfg, {good.key: good}, NOW)
    assert vetted.decisions[good.key] is good and vetted.dropped == []
    d = all_down(cfg, vetted.decisions[good.key])
    assert d.values == ("127.0.2.1",) and d.basis == "last_known_good"


def test_a_region_the_record_lacks_or_another_regions_address_is_dropped() -> None:
    cfg = cfg_lkg()
    # eu-west-1's address under us-east-1, and a region the config does not have
    odd = stored(last_good=(("us-east-1", "mars-1"), ("127.0.1.1", "127.0.2.1")),
                 regions=("mars-1",), values=("6.6.6.6",), shares={"mars-1": 1.0}, tier=7,
                 usable=("mars-1",), by_region={"mars-1": ("6.6.6.6",),
                                                "us-east-1": ("127.0.2.1",)},
                 at=NOW + 3600, changed_at=NOW + 3600)
    vetted = vet(cfg, {odd.key: odd}, NOW)
    kept = vetted.decisions[odd.key]
    assert kept.last_good == (("us-east-1",), ("127.0.1.1",))
    assert kept.regions == () and kept.values == () and kept.shares == {}
    assert kept.tier is None and kept.usable == ()
    assert kept.by_region == {"us-east-1": ()}
    assert kept.at == NOW and kept.changed_at == NOW
    said = vetted.dropped[0]
    for word in ("mars-1", "6.6.6.6", "127.0.2.1", "tier 7", "in the future"):
        assert word in said, said


def test_a_decision_of_a_record_no_longer_configured_is_forgotten_quietly() -> None:
    gone = stored(name="old.example.test.")
    vetted = vet(cfg_lkg(), {gone.key: gone}, NOW)
    assert vetted.decisions == {} and vetted.dropped == []


@st.composite
def memories(draw: st.DrawFn, s: Scenario) -> Decision:
    """Whatever a store might hold for the scenario's record: its regions and addresses,
    others, and ones nobody configured."""
    names = st.sampled_from([*s.cfg.regions, "mars-1", ""])
    addresses = st.sampled_from([ep.address for _, _, _, ep in s.cfg.all_endpoints()]
                                + ["6.6.6.6", "::1", "x"])
    regions = tuple(draw(st.lists(names, max_size=3)))
    good = draw(st.none() | st.tuples(st.lists(names, max_size=3).map(tuple),
                                      st.lists(addresses, max_size=3).map(tuple)))
    return Decision(
        name=s.record.name, type=s.record.type, ttl=60, policy=s.record.policy,
        regions=regions, values=tuple(draw(st.lists(addresses, max_size=3))),
        shares={r: 1.0 for r in regions}, basis=draw(st.sampled_from(
            ["health", "hold", "pinned", "fail_open", "last_known_good", "closed"])),
        reason="", at=draw(st.floats(0, 2 * NOW)), tier=draw(st.none() | st.integers(0, 5)),
        last_good=good, usable=tuple(draw(st.lists(names, max_size=3))),
        by_region={r: tuple(draw(st.lists(addresses, max_size=2))) for r in regions},
        changed_at=draw(st.none() | st.floats(0, 2 * NOW)))


@given(st.data())
def test_whatever_the_store_held_only_the_configs_addresses_are_ever_served(
        data: st.DataObject) -> None:
    s = data.draw(scenarios(pins=False))
    memory = data.draw(memories(s))
    vetted = vet(s.cfg, {memory.key: memory}, NOW).decisions[memory.key]
    record = s.record
    regions = set(s.cfg.record_regions(record))
    configured = {ep.address for r in regions for _, ep in s.cfg.endpoints_of(r)}
    assert set(vetted.regions) <= regions and set(vetted.values) <= configured
    if vetted.last_good is not None:
        good_regions, good_values = vetted.last_good
        assert good_regions and set(good_regions) <= regions
        assert set(good_values) <= {ep.address for r in good_regions
                                    for _, ep in s.cfg.endpoints_of(r)}
    assert vetted.tier is None or (record.policy == "failover"
                                   and vetted.tier < len(record.tiers))
    assert vetted.at <= NOW
    # vetting twice changes nothing more
    again = vet(s.cfg, {vetted.key: vetted}, NOW)
    assert again.dropped == [] and again.decisions[vetted.key] == vetted
    views = region_views(s.cfg, record, s.snapshot, s.overrides)
    d = decide(record, views, s.overrides, vetted, NOW)
    assert set(d.values) <= configured, (d.values, d.reason)


def test_what_was_dropped_is_said_field_by_field_with_long_names_cut() -> None:
    # what `failover status` and the log show: each field named, the values it lost
    # quoted, a name longer than 100 characters cut there (a store can hold anything)
    long_region, long_value = "m" * 150, "x" * 150
    odd = stored(last_good=(("us-east-1", "mars-1"), ("127.0.1.1", "127.0.2.1")),
                 regions=("mars-1", "us-east-1", "venus-2"), values=("6.6.6.6", "127.0.1.1"),
                 shares={"mars-1": 1.0, "us-east-1": 0.5, long_region: 0.1}, tier=2,
                 usable=(long_region, "us-east-1"),
                 by_region={long_region: ("6.6.6.6",), "us-east-1": ("127.0.2.1", long_value)},
                 at=NOW + 3600, changed_at=NOW + 3600)
    vetted = vet(cfg_lkg(), {odd.key: odd}, NOW)
    cut, value_cut = repr("m" * 100), repr("x" * 100)
    assert vetted.dropped == ["api.example.test. A: " + "; ".join([
        "regions: not regions of the record: 'mars-1', 'venus-2'",
        "values: not addresses of the config's endpoints there: '6.6.6.6'",
        "last_good regions: not regions of the record: 'mars-1'",
        "last_good values: not addresses of the config's endpoints there: '127.0.2.1'",
        f"by_region: {cut} is not a region of the record",
        "by_region us-east-1: not addresses of the config's endpoints there: "
        f"'127.0.2.1', {value_cut}",
        f"usable: not regions of the record: {cut}",
        f"shares: of regions not answering: 'mars-1', {cut}",
        "tier 2: the record has no such failover tier",  # two tiers: 0 and 1
        "at: in the future",
        "changed_at: in the future"])]
    kept = vetted.decisions[odd.key]
    assert kept.regions == ("us-east-1",) and kept.values == ("127.0.1.1",)
    assert kept.shares == {"us-east-1": 0.5} and kept.usable == ("us-east-1",)
    assert kept.by_region == {"us-east-1": ()} and kept.tier is None


def test_a_last_good_left_empty_is_dropped_saying_so_and_a_valid_tier_is_kept() -> None:
    odd = stored(last_good=(("mars-1",), ("127.0.1.1",)), tier=1, at=NOW + 1)
    vetted = vet(cfg_lkg(), {odd.key: odd}, NOW)
    assert vetted.dropped == ["api.example.test. A: last_good regions: not regions of the "
                              "record: 'mars-1'; last_good values: not addresses of the "
                              "config's endpoints there: '127.0.1.1'; last_good dropped: the "
                              "record fails open instead; at: in the future"]
    kept = vetted.decisions[odd.key]
    assert kept.last_good is None and kept.tier == 1 and kept.at == NOW
    assert kept.changed_at == odd.changed_at


def test_addresses_are_compared_as_the_config_spells_them_and_from_the_records_pool() -> None:
    # an IPv6 endpoint written long-hand is the same address as its canonical form; a
    # record answered by a pool holds that pool's addresses, not the region's others
    cfg = config({"us-east-1": ["2001:db8:0:0::1", "127.0.1.1"], "eu-west-1": ["127.0.2.1"]},
                 [{"name": "v6.example.test.", "type": "AAAA", "policy": "failover",
                   "order": ["us-east-1", "eu-west-1"]},
                  {"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["us-east-1", "eu-west-1"], "pool": "web"}],
                 pools={"web": {"us-east-1": [{"address": "127.0.1.7", "check": "web"}],
                                "eu-west-1": [{"address": "127.0.2.7", "check": "web"}]}})
    v6 = stored(name="v6.example.test.", type="AAAA", values=("2001:db8::1",), last_good=None,
                by_region={"us-east-1": ("2001:db8::1",)})
    pooled = stored(values=("127.0.1.7", "127.0.1.1"), last_good=None,
                    by_region={"us-east-1": ("127.0.1.7",)})
    vetted = vet(cfg, {pooled.key: pooled, v6.key: v6}, NOW)
    assert vetted.decisions[v6.key] is v6
    assert vetted.decisions[pooled.key].values == ("127.0.1.7",)
    assert vetted.dropped == ["api.example.test. A: values: not addresses of the config's "
                              "endpoints there: '127.0.1.1'"]


def test_a_forgotten_record_does_not_end_the_vetting_of_the_others() -> None:
    gone, kept = stored(name="old.example.test."), stored()
    vetted = vet(cfg_lkg(), {gone.key: gone, kept.key: kept}, NOW)
    assert vetted.decisions == {kept.key: kept}
