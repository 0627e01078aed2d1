"""Decisions per client network: each network's own order, weights, drains and pins, and
latency measured by its own vantage; networks that see a record alike share a decision."""

from __future__ import annotations

from typing import Any

import pytest

from failover.config import Config
from failover.health import HealthBoard
from failover.health.tracker import CheckState
from policies import Overrides, decide_all
from tests.builders import config, snapshot

NETWORKS = {"europe": {"cidrs": ["127.0.0.128/25"], "vantage": "eu-west-1"},
            "default": {"vantage": "us-east-1"}}
EAST, WEST = "127.0.1.1", "127.0.2.1"


def two_regions(records: list[dict[str, Any]], **extra: Any) -> Config:
    return config({"us-east-1": [EAST], "eu-west-1": [WEST]}, records,
                  networks=NETWORKS, **extra)


def answers(cfg: Config, **kw: Any) -> dict[tuple[str, str], tuple[str, ...]]:
    snap = kw.pop("snap", None) or snapshot(cfg, kw.pop("down", None))
    return {(d.name, d.network): d.values
            for d in decide_all(cfg, snap, kw.pop("overrides", Overrides()), {}, 1000.0, **kw)}


API = {"name": "api.example.test.", "type": "A", "policy": "failover",
       "order": ["us-east-1", "eu-west-1"],
       "networks": {"europe": {"order": ["eu-west-1", "us-east-1"]}}}


def test_each_network_answers_by_its_own_order_and_fails_over_on_its_own() -> None:
    cfg = two_regions([API])
    api = "api.example.test."
    assert answers(cfg) == {(api, "europe"): (WEST,), (api, "default"): (EAST,)}
    assert answers(cfg, down={"us-east-1": 990.0}) == {(api, "europe"): (WEST,),
                                                        (api, "default"): (WEST,)}
    assert answers(cfg, down={"eu-west-1": 990.0}) == {(api, "europe"): (EAST,),
                                                        (api, "default"): (EAST,)}


def test_a_drain_or_a_pin_for_one_network_leaves_the_others_alone() -> None:
    cfg = two_regions([API])
    api = "api.example.test."
    drained = Overrides(drained=frozenset({"eu-west-1@europe"}))
    assert answers(cfg, overrides=drained) == {(api, "europe"): (EAST,),
                                               (api, "default"): (EAST,)}
    everywhere = Overrides(drained=frozenset({"us-east-1"}))
    assert answers(cfg, overrides=everywhere) == {(api, "europe"): (WEST,),
                                                  (api, "default"): (WEST,)}
    # a network's own pin wins over one for every network
    pins = Overrides(pinned={api: "us-east-1", f"{api}@europe": "eu-west-1"})
    assert answers(cfg, overrides=pins) == {(api, "europe"): (WEST,), (api, "default"): (EAST,)}


def test_weights_per_network() -> None:
    cfg = two_regions([{"name": "www.example.test.", "type": "A", "policy": "weighted",
                        "weights": {"us-east-1": 100, "eu-west-1": 0},
                        "networks": {"europe": {"weights": {"us-east-1": 0,
                                                            "eu-west-1": 100}}}}])
    www = "www.example.test."
    assert answers(cfg) == {(www, "europe"): (WEST,), (www, "default"): (EAST,)}


LATENCY = {"name": "app.example.test.", "type": "A", "policy": "latency"}


def test_latency_answers_each_network_by_its_vantage() -> None:
    cfg = two_regions([LATENCY])
    app = "app.example.test."
    east, west = "us-east-1/127.0.1.1", "eu-west-1/127.0.2.1"
    measured = {"eu-west-1": {east: 90.0, west: 4.0}, "us-east-1": {east: 3.0, west: 85.0}}
    assert answers(cfg, latencies=measured) == {(app, "europe"): (WEST,),
                                                (app, "default"): (EAST,)}


def test_a_network_whose_vantage_is_not_live_is_answered_by_the_overall_latency() -> None:
    cfg = two_regions([LATENCY])
    east, west = "us-east-1/127.0.1.1", "eu-west-1/127.0.2.1"
    snap = snapshot(cfg, latency={"us-east-1": 10.0, "eu-west-1": 50.0})
    decisions = decide_all(cfg, snap, Overrides(), {}, 1000.0,
                           latencies={"us-east-1": {east: 3.0, west: 85.0}})
    europe = next(d for d in decisions if d.network == "europe")
    assert europe.values == (EAST,)  # the snapshot's latency: us-east-1 is faster overall
    assert "vantage eu-west-1 is not live" in europe.reason


def test_the_board_gives_each_live_vantage_its_own_latencies() -> None:
    cfg = two_regions([LATENCY])
    east, west = "us-east-1/127.0.1.1", "eu-west-1/127.0.2.1"
    board = HealthBoard(cfg, local_name="us-east-1")
    for eid, ms in ((east, 3.0), (west, 85.0)):
        board.observe(eid, "web", True, "ok", 1.0, ms)
    board.set_remote({"eu-west-1": {(east, "web"): CheckState(latency_ms=90.0),
                                    (west, "web"): CheckState(latency_ms=4.0)}}, 2.0)
    assert board.vantage_latencies({"us-east-1", "eu-west-1", "ap-south-1"}) == {
        "us-east-1": {east: 3.0, west: 85.0}, "eu-west-1": {east: 90.0, west: 4.0}}


@pytest.mark.parametrize("n", [300])
def test_networks_that_see_records_alike_share_one_decision(
        n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    decide_module = sys.modules["policies.decide"]  # the module (policies.decide is a function)

    records = [{"name": f"r{i}.example.test.", "type": "A", "policy": "failover",
                "order": ["us-east-1", "eu-west-1"]} for i in range(n)]
    cfg = config({"us-east-1": [EAST], "eu-west-1": [WEST]}, records,
                 networks={"a": {"cidrs": ["127.0.0.128/26"]},
                           "b": {"cidrs": ["127.0.0.192/26"]}, "default": {}})
    made = []
    real = decide_module.decide

    def counting(*args: Any, **kw: Any) -> Any:
        made.append(args[0].name)
        return real(*args, **kw)

    monkeypatch.setattr(decide_module, "decide", counting)
    decisions = decide_module.decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
    assert len(decisions) == 3 * n and len(made) == 1
    assert {d.network for d in decisions} == {"a", "b", "default"}
    assert len({d.key for d in decisions}) == 3 * n


def test_a_plan_that_empties_one_networks_answer_is_refused() -> None:
    from failover.reconcile import Ledger
    from failover.records import RecordSet

    cfg = two_regions([API])
    api = "api.example.test."
    ledger = Ledger(cfg, ownership=False)
    ledger.set_actual([RecordSet.make(api, "A", 60, [WEST], set_identifier="europe"),
                       RecordSet.make(api, "A", 60, [EAST], set_identifier="default")])
    decisions = decide_all(cfg, snapshot(cfg), Overrides(), {}, 1000.0)
    # europe's decision lost (as a bug or a bad state would lose it): its answer would go
    ledger.set_decisions([d for d in decisions if d.network != "europe"])
    assert ledger.plan().violations == [f"{api} would be left with no answer"]
