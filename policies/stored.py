"""Stored decisions, vetted against the config before a policy remembers them.

A decision is the policies' memory (failback, hysteresis, the last known good answer),
and it comes back from a store others can write: a fleet's etcd prefix, a state file.
`last_good` is served as is when every region is down (fail mode last_known_good), so a
stored decision must never carry an answer the config does not hold. Every value is
mapped back to the config: regions kept only when the record has them, addresses only
when they are the config's endpoints of those regions, tiers only when the record has
them, times only up to `now`; anything else is dropped and said. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from failover.records import canonical_value
from policies.model import Decision, DecisionKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from failover.config import Config, Record

    _Addresses = Callable[[Record, str], frozenset[str]]  # a region's addresses for a record

Key = DecisionKey


@dataclass(frozen=True)
class Vetted:
    """The decisions to remember, by (name, type), and what was dropped from them (one
    line per decision, naming it and the values the config does not hold)."""

    decisions: dict[Key, Decision]  # by (name, type), and network with networks
    dropped: list[str]


def vet(cfg: Config, stored: Mapping[Key, Decision], now: float) -> Vetted:
    """Keep of each stored decision only what the config vouches for.

    A decision for a record (or a client network) the config no longer has is left out
    silently (the config changed); one whose `last_good` loses every region or address loses `last_good`, so
    the record fails open rather than serving an answer nobody configured.
    """
    records = cfg.memo("records_by_key", lambda: {(r.name, r.type): r for r in cfg.records})
    addresses: dict[tuple[str, str | None, str], frozenset[str]] = {}

    def of(record: Record, region: str) -> frozenset[str]:
        key = (region, record.pool, record.type)
        if key not in addresses:
            addresses[key] = frozenset(
                canonical_value(record.type, ep.address)
                for _, ep in cfg.endpoints_of(region, record.pool) if ep.kind == record.type)
        return addresses[key]

    kept: dict[Key, Decision] = {}
    dropped: list[str] = []
    for key, d in stored.items():
        record = records.get((key[0], key[1]))
        known = d.network in cfg.networks if cfg.networks else not d.network
        if record is None or d.key != key or not known:
            continue
        if d.network:
            record = cfg.record_for(record, d.network)
        clean, why = _vet_one(cfg, record, d, now, of)
        kept[key] = clean
        if why:
            dropped.append(f"{d.name} {d.type}: " + "; ".join(why))
    return Vetted(kept, dropped)


def _vet_one(cfg: Config, record: Record, d: Decision, now: float,
             of: _Addresses) -> tuple[Decision, list[str]]:
    why: list[str] = []
    regions = set(cfg.record_regions(record))

    def keep_regions(names: tuple[str, ...], what: str) -> tuple[str, ...]:
        out = tuple(r for r in names if r in regions)
        if len(out) != len(names):
            why.append(f"{what}: not regions of the record: "
                       + ", ".join(repr(r[:100]) for r in names if r not in regions))
        return out

    def keep_values(values: tuple[str, ...], among: tuple[str, ...], what: str
                    ) -> tuple[str, ...]:
        allowed = frozenset().union(*(of(record, r) for r in among))
        out = tuple(v for v in values if v in allowed)
        if len(out) != len(values):
            why.append(f"{what}: not addresses of the config's endpoints there: "
                       + ", ".join(repr(v[:100]) for v in values if v not in allowed))
        return out

    chosen = keep_regions(d.regions, "regions")
    values = keep_values(d.values, chosen, "values")
    good = d.last_good
    if good is not None:
        good_regions = keep_regions(good[0], "last_good regions")
        good_values = keep_values(good[1], good_regions, "last_good values")
        good = (good_regions, good_values) if good_regions and good_values else None
        if good is None:
            why.append("last_good dropped: the record fails open instead")
    by_region = {}
    for r, v in d.by_region.items():
        if r in regions:
            by_region[r] = keep_values(v, (r,), f"by_region {r}")
        else:
            why.append(f"by_region: {r[:100]!r} is not a region of the record")
    usable = keep_regions(d.usable, "usable")
    shares = {r: x for r, x in d.shares.items() if r in chosen}
    if len(shares) != len(d.shares):
        why.append("shares: of regions not answering: "
                   + ", ".join(repr(r[:100]) for r in d.shares if r not in shares))
    tier = d.tier
    if tier is not None and not (record.policy == "failover" and tier < len(record.tiers)):
        why.append(f"tier {tier}: the record has no such failover tier")
        tier = None
    at, changed_at = d.at, d.changed_at
    if at > now:
        why.append("at: in the future")
        at = now
    if changed_at is not None and changed_at > now:
        why.append("changed_at: in the future")
        changed_at = now
    if not why:
        return d, []
    return replace(d, regions=chosen, values=values, last_good=good, by_region=by_region,
                   usable=usable, shares=shares, tier=tier, at=at, changed_at=changed_at), why
