"""What a weighted answer gives resolvers on a server that cannot weight.

An RFC 2136 server (BIND, Knot, PowerDNS) or a zone file holds one RRset per name and
type: every answering region's addresses in one answer, which resolvers and clients
rotate evenly. Weights cannot hold there: each address gets an equal share, so a region
gets its share of the addresses. Route 53 weighs natively (one weighted record per
region), except with `networks:`: each network's answer is then one geolocation record
set, served like one RRset. Provider none serves nothing. Status, the page, plan and
history show the shares a resolver sees, with the policy's beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from policies.model import Decision
from policies.reasons import shares_text

if TYPE_CHECKING:
    from failover.config import Config

ONE_RRSET = frozenset({"rfc2136", "bind", "zonefile"})  # provider types that cannot weight
CANNOT_WEIGHT = "this server cannot weight"
GEO_ONE_ANSWER = "a geolocation record holds one answer"  # Route 53 with networks


def provider_type(cfg: Config, name: str) -> str:
    """The provider type of the zone a name belongs to (the first zone's when outside
    every zone, as writes are)."""
    types = cfg.memo("zone_provider_types",
                     lambda: {z.zone: z.provider.type for z in cfg.zone_specs})
    return types.get(cfg.zone_of(name) or "", cfg.provider.type)


def weighing_note(cfg: Config, name: str) -> str | None:
    """Why a name's zone serves a weighted answer as one RRset whose addresses resolvers
    rotate evenly, not by weight: RFC 2136 servers and zone files hold one RRset per
    name; Route 53 with networks one geolocation record set per network. None where
    the zone weighs."""
    kind = provider_type(cfg, name)
    if kind in ONE_RRSET:
        return CANNOT_WEIGHT
    if kind == "route53" and cfg.networks:
        return GEO_ONE_ANSWER
    return None


def cannot_weight(cfg: Config, name: str) -> bool:
    """Whether a name's zone serves a weighted answer in equal shares per address
    (see `weighing_note`), not by weight."""
    return weighing_note(cfg, name) is not None


def address_shares(decision: Decision) -> dict[str, float] | None:
    """Each answering region's share when every address of the answer gets an equal one
    (an address two regions hold is split between them); None when the answer's
    addresses cannot be told apart by region (a last known good answer)."""
    if not decision.values:
        return None
    holders = {v: [r for r in decision.regions if v in decision.by_region.get(r, ())]
               for v in decision.values}
    if not all(holders.values()):
        return None
    each = 1 / len(decision.values)
    shares: dict[str, float] = {}
    for regions in holders.values():
        for r in regions:
            shares[r] = shares.get(r, 0.0) + each / len(regions)
    return {r: shares[r] for r in decision.regions if r in shares}


def as_served(decision: Decision, why: str = CANNOT_WEIGHT) -> Decision:
    """A weighted decision as one RRset serves it: `shares` become the served shares,
    `policy_shares` keep the policy's, the reason says so (`why`: what holds one RRset,
    from `weighing_note`). Other decisions, and weighted ones served as chosen, come
    back unchanged."""
    if decision.policy != "weighted":
        return decision
    served = address_shares(decision)
    if served is None or _same(served, decision.shares):
        return decision
    if decision.type == "CNAME":
        note = f"a CNAME holds one target: {why}"
        reason = decision.reason  # already names the one target
    else:
        counts = {len(decision.by_region.get(r, ())) for r in decision.regions}
        note = f"equal shares{' per address' if len(counts) > 1 else ''}: {why}"
        reason = f"{decision.reason}; served {shares_text(served)} ({note})"
    return replace(decision, shares=served, policy_shares=dict(decision.shares),
                   shares_note=note, reason=reason)


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(abs(a[r] - b[r]) < 1e-9 for r in a)
