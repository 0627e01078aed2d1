"""The values policies take and return: region views, operator overrides, decisions."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# health: chosen from healthy regions; hold: a healthy previous answer kept on purpose
# (failback delay, latency hysteresis); the others: chosen without health to go on.
Basis = Literal["health", "hold", "pinned", "fail_open", "last_known_good", "closed"]
HEALTH_BASES = ("health", "hold")


@dataclass(frozen=True)
class RegionView:
    """A region as one record sees it: only endpoints of the record's type count.

    `values` are the healthy endpoints' values; `all_values` every endpoint's value (what a
    fail-open answer serves). `since` is when the region's status began (None: since
    start); `reason` explains an unhealthy status; `latency_ms` is the best healthy
    endpoint's smoothed latency.
    """

    name: str
    healthy: bool
    values: tuple[str, ...]
    all_values: tuple[str, ...]
    since: float | None = None
    reason: str = ""
    latency_ms: float | None = None
    drained: bool = False

    @property
    def usable(self) -> bool:
        """May answer on the basis of health: healthy and not drained by an operator."""
        return self.healthy and not self.drained


NETWORK_SEP = "@"  # an override for one client network: `us-east-1@europe`, `api.x.@europe`


@dataclass(frozen=True)
class Overrides:
    """Operator state: drained regions, and record names pinned to one region.

    An entry for one client network carries it after NETWORK_SEP (`us-east-1@europe`);
    `for_network` gives what one network sees.
    """

    drained: frozenset[str] = frozenset()
    pinned: Mapping[str, str] = field(default_factory=dict)

    @functools.cached_property
    def scoped(self) -> bool:
        """Whether any entry is for one network only."""
        return any(NETWORK_SEP in d for d in self.drained) or any(
            NETWORK_SEP in n for n in self.pinned)

    def for_network(self, network: str) -> Overrides:
        """The overrides one network sees: those for every network and its own (its
        own pin of a name wins over one for every network)."""
        if not self.scoped:
            return self
        tail = NETWORK_SEP + network
        drained = frozenset(d.split(NETWORK_SEP, 1)[0] for d in self.drained
                            if NETWORK_SEP not in d or d.endswith(tail))
        pinned = {n: r for n, r in self.pinned.items() if NETWORK_SEP not in n}
        pinned.update({n[:-len(tail)]: r for n, r in self.pinned.items() if n.endswith(tail)})
        return Overrides(drained, pinned)


@dataclass(frozen=True)
class Choice:
    """What a routing policy picked: regions with their traffic shares, and why."""

    regions: tuple[str, ...]
    shares: Mapping[str, float]
    reason: str
    basis: Basis = "health"
    tier: int | None = None
    hold_until: float | None = None  # a hold that ends at this time (no probe announces it)


DecisionKey = tuple[str, ...]


def decision_key(name: str, rtype: str, network: str = "") -> DecisionKey:
    """Where a decision is kept: (name, type) for the one answer of a config without
    networks, (name, type, network) for one network's."""
    return (name, rtype, network) if network else (name, rtype)


@dataclass(frozen=True)
class Decision:
    """The answer for one record at one instant, and the reason a person can read.

    `regions` answer with `values` (canonical, sorted); `shares` is each answering
    region's share of traffic (sums to 1); `tier` is the failover tier that answers;
    `last_good` is the last answer chosen on the basis of health, kept for the
    last_known_good fail mode. `usable` and `by_region` let a provider with native
    routing (Route 53) publish one record per region. When the server serves other shares
    than the policy chose (one RRset on a server that cannot weight), `shares` are the
    served ones, `policy_shares` the chosen ones and `shares_note` says why.
    """

    name: str
    type: str
    ttl: int
    policy: str
    regions: tuple[str, ...]
    values: tuple[str, ...]
    shares: Mapping[str, float]
    basis: Basis
    reason: str
    at: float
    tier: int | None = None
    last_good: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    usable: tuple[str, ...] = ()  # regions healthy and not drained at decision time
    by_region: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # each one's values
    changed_at: float | None = None  # when the answer last changed to these values
    hold_until: float | None = None  # a hold that ends at this time: decide again then
    policy_shares: Mapping[str, float] = field(default_factory=dict)  # when not served
    shares_note: str = ""  # why `shares` differ from what the policy chose
    network: str = ""  # the client network it answers ("": every client, no networks)

    @functools.cached_property
    def key(self) -> DecisionKey:
        """The answer this decision is for: (name, type), and its network when it has
        one (see `decision_key`)."""
        return decision_key(self.name, self.type, self.network)

    @property
    def record_key(self) -> tuple[str, str]:
        """The record this decision is for: (name, type)."""
        return (self.name, self.type)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict; `policy_shares` and `shares_note` only when the served
        shares differ from the policy's."""
        out: dict[str, object] = {
            "name": self.name, "type": self.type, "policy": self.policy,
            "regions": list(self.regions), "values": list(self.values),
            "shares": {r: round(s, 6) for r, s in self.shares.items()},
            "basis": self.basis, "reason": self.reason, "tier": self.tier}
        if self.network:
            out["network"] = self.network
        if self.shares_note:
            out["policy_shares"] = {r: round(s, 6) for r, s in self.policy_shares.items()}
            out["shares_note"] = self.shares_note
        return out
