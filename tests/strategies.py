"""Hypothesis strategies: random configs, health and overrides, small enough to shrink well."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from failover.config import Config
from failover.health import EndpointHealth, HealthSnapshot
from policies import Overrides
from tests.builders import config


@dataclass(frozen=True)
class Scenario:
    cfg: Config
    snapshot: HealthSnapshot
    overrides: Overrides

    @property
    def record(self) -> Any:
        return self.cfg.records[0]


@st.composite
def record_specs(draw: st.DrawFn, names: list[str], policy: str | None = None) -> dict[str, Any]:
    policy = policy or draw(st.sampled_from(["failover", "weighted", "latency"]))
    rec: dict[str, Any] = {"name": "api.example.test.", "type": "A", "policy": policy,
                           "fail_mode": draw(st.sampled_from(["open", "last_known_good", "closed"]))}
    used = draw(st.permutations(names))
    used = used[: draw(st.integers(1, len(used)))]
    if policy == "failover":
        tiers: list[Any] = []
        i = 0
        while i < len(used):
            size = draw(st.integers(1, len(used) - i))
            tier = list(used[i:i + size])
            tiers.append(tier[0] if size == 1 and draw(st.booleans()) else tier)
            i += size
        rec["order"] = tiers
    elif policy == "weighted":
        rec["weights"] = {r: draw(st.sampled_from([0, 0, 1, 2, 10, 70, 255])) for r in used}
    else:
        rec["regions"] = list(used)
        rec["latency_hysteresis_percent"] = draw(st.sampled_from([0, 10, 50]))
    return rec


@st.composite
def scenarios(draw: st.DrawFn, policy: str | None = None, pins: bool = True) -> Scenario:
    n = draw(st.integers(1, 5))
    regions = {f"r{i}": [f"127.0.{i + 1}.{j + 1}" for j in range(draw(st.integers(1, 3)))]
               for i in range(n)}
    names = list(regions)
    cfg = config(regions, [draw(record_specs(names, policy))])
    snap = draw(snapshots(cfg))
    drained = frozenset(draw(st.lists(st.sampled_from(names), unique=True, max_size=n)))
    pinned = {}
    if pins and draw(st.integers(0, 9)) == 0:
        pinned = {"api.example.test.": draw(st.sampled_from([*names, "elsewhere"]))}
    return Scenario(cfg, snap, Overrides(drained, pinned))


@st.composite
def snapshots(draw: st.DrawFn, cfg: Config, now: float = 10_000.0) -> HealthSnapshot:
    """Random health for every endpoint of `cfg`."""
    eps = {}
    for rname, region in cfg.regions.items():
        for ep in region.endpoints:
            eps[f"{rname}/{ep.label}"] = EndpointHealth(
                healthy=draw(st.booleans()), reason="drawn",
                since=draw(st.none() | st.floats(0, now)),
                latency_ms=draw(st.none() | st.floats(0.1, 500)))
    return HealthSnapshot(at=now, endpoints=eps)
