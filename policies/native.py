"""Decisions as native routing records, for providers that route themselves (Route 53).

Failover: PRIMARY holds the answer the controller resolved, SECONDARY the next tier (the
backstop if Route 53's own health checks are attached), or the last tier when that one
answers. Weighted: one record per
answering region with its configured weight. Latency: one record per usable region with
its AWS region, so Route 53 picks by the client's latency. Pinned and fail-open answers
keep the record's policy with the regions the decision chose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failover.records import RecordSet
from policies.model import HEALTH_BASES, Decision

if TYPE_CHECKING:
    from failover.config import Config, Record


def native_records(cfg: Config, record: Record, decision: Decision) -> list[RecordSet]:
    """The native record sets for one record's decision (none when it fails closed)."""
    if not decision.values:
        return []
    name, rtype, ttl = record.name, record.type, record.ttl

    def values(region: str) -> tuple[str, ...]:
        vals = decision.by_region.get(region, ())
        return vals[:1] if rtype == "CNAME" else vals

    if record.policy == "failover":
        out = [RecordSet.make(name, rtype, ttl, decision.values, set_identifier="primary",
                              failover="PRIMARY")]
        backup = _next_tier(cfg, record, decision)
        if backup:
            out.append(RecordSet.make(name, rtype, ttl, backup, set_identifier="secondary",
                                      failover="SECONDARY"))
        return out
    if record.policy == "weighted":
        weights = record.weights or {}
        heavy = any(weights.get(r, 0) > 0 for r in decision.regions)
        return [RecordSet.make(name, rtype, ttl, values(r), set_identifier=r,
                               weight=weights.get(r, 0) if heavy else 0)
                for r in decision.regions if values(r)]
    regions = decision.usable if decision.basis in HEALTH_BASES else decision.regions
    return [RecordSet.make(name, rtype, ttl, values(r), set_identifier=r,
                           region=cfg.aws_region_of(r))
            for r in regions if values(r) and cfg.aws_region_of(r)]


def _next_tier(cfg: Config, record: Record, decision: Decision) -> tuple[str, ...]:
    """The values of the first tier after the answering one (all its endpoints)."""
    serving = set(decision.regions)
    start = (decision.tier + 1) if decision.tier is not None else 0
    for tier in record.tiers[start:]:
        if serving.issuperset(tier):
            continue
        vals = _tier_values(cfg, record, tier)
        if vals:
            return vals
    if len(record.tiers) > 1:
        # the last tier answers: SECONDARY keeps holding it rather than going away, so
        # that a two-region failover changes PRIMARY alone (2 of the 1,000 elements a
        # change batch may hold, not 3: 10,000 records in 20 batches, not 30)
        for tier in reversed(record.tiers):
            vals = _tier_values(cfg, record, tier)
            if vals:
                return vals
    return ()


def _tier_values(cfg: Config, record: Record, tier: tuple[str, ...]) -> tuple[str, ...]:
    vals = [ep.address for r in tier for _, ep in cfg.endpoints_of(r, record.pool)
            if ep.kind == record.type]
    return tuple(vals[:1]) if record.type == "CNAME" else tuple(vals)


def native_desired(cfg: Config, decisions: list[Decision]) -> list[RecordSet]:
    """Native record sets for every decision, in config order."""
    by_key = {(r.name, r.type): r for r in cfg.records}
    return [rs for d in decisions for rs in native_records(cfg, by_key[d.record_key], d)]
