"""One entry point: a record, the health snapshot and the overrides in; a Decision out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from failover.records import RecordSet, canonical_value
from policies.failover import choose_failover
from policies.latency import choose_latency
from policies.model import (
    HEALTH_BASES,
    Choice,
    Decision,
    DecisionKey,
    Overrides,
    RegionView,
    decision_key,
)
from policies.reasons import describe, names, serve
from policies.served import as_served, weighing_note
from policies.weighted import choose_weighted

if TYPE_CHECKING:
    from failover.config import Config, Record
    from failover.health import HealthSnapshot


def region_views(cfg: Config, record: Record, snapshot: HealthSnapshot,
                 overrides: Overrides, latency: Mapping[str, float] | None = None
                 ) -> dict[str, RegionView]:
    """Each region of a record as the record sees it, in config order.

    Only endpoints whose address fits the record type count (IPv4 for A, IPv6 for AAAA,
    host names for CNAME). A region is healthy when any of those endpoints is.
    `latency` (endpoint id -> ms): the latencies one vantage measured, instead of the
    snapshot's (a client network answered by its own vantage).
    """
    views = {}
    for rname in cfg.record_regions(record):
        eps = [(eid, ep) for eid, ep in cfg.endpoints_of(rname, record.pool)
               if ep.kind == record.type]
        health = [(ep, snapshot.by_id(eid)) for eid, ep in eps]
        good = [(ep, h) for ep, h in health if h.healthy]
        all_values = tuple(ep.address for _, ep in eps)
        if good:
            since_known = [h.since for _, h in good if h.since is not None]
            since = min(since_known) if len(since_known) == len(good) else None
            lats = [h.latency_ms for _, h in good if h.latency_ms is not None]
            if latency is not None:
                lats = [latency[eid] for eid, ep in eps if eid in latency
                        and snapshot.by_id(eid).healthy]
            views[rname] = RegionView(rname, True, tuple(ep.address for ep, _ in good),
                                      all_values, since=since, reason="",
                                      latency_ms=min(lats) if lats else None,
                                      drained=rname in overrides.drained)
            continue
        last_ep, last = max(health, key=lambda eh: eh[1].since or 0.0)
        same = len({h.reason for _, h in health}) == 1
        reason = last.reason if same else (
            f"all {len(health)} endpoints unhealthy, last {last_ep.label}: {last.reason}")
        views[rname] = RegionView(rname, False, (), all_values, since=last.since, reason=reason,
                                  drained=rname in overrides.drained)
    return views


def decide(record: Record, views: Mapping[str, RegionView], overrides: Overrides,
           previous: Decision | None, now: float) -> Decision:
    """The answer for one record: by its policy, the overrides and the fail mode.

    Pure: `previous` (this record's last decision) carries failback, hysteresis and the
    last known good answer; `now` is seconds since the epoch. With fail mode open or
    last_known_good the answer is never empty.
    """
    pinned = overrides.pinned.get(record.name)
    note = ""
    if pinned is not None and pinned in views:
        view = views[pinned]
        notes = ([] if view.healthy else [describe(replace(view, drained=False))]) + (
            ["its drain is overridden by the pin"] if view.drained else [])
        why = "pinned by operator" + (f" ({'; '.join(notes)})" if notes else "")
        choice = Choice((pinned,), {pinned: 1.0}, serve([pinned], why), basis="pinned")
        return _finish(record, views, choice, previous, now)
    if pinned is not None:
        note = f" (pin to {pinned} ignored: not a region of this record)"
    choice = _choose(record, views, previous, now) or _all_out(record, views, previous, now)
    if note:
        choice = replace(choice, reason=choice.reason + note)
    return _finish(record, views, choice, previous, now)


def _choose(record: Record, views: Mapping[str, RegionView], previous: Decision | None,
            now: float) -> Choice | None:
    if record.policy == "failover":
        return choose_failover(record.tiers, views, record.failback_delay, previous, now)
    if record.policy == "weighted":
        return choose_weighted(record.weights or {}, views)
    hold = record.latency_min_hold if record.latency_min_hold is not None else record.ttl
    return choose_latency(list(views), views, record.latency_hysteresis_percent, previous,
                          record.latency_hysteresis_ms, min_hold=hold, now=now)


def _all_out(record: Record, views: Mapping[str, RegionView], previous: Decision | None,
             now: float) -> Choice:
    """No region is usable: answer by the record's fail mode."""
    out = "; ".join(describe(v) for v in views.values())
    if record.fail_mode == "closed":
        return Choice((), {}, f"no answer (fail mode closed): {out}", basis="closed")
    if record.fail_mode == "last_known_good" and previous and previous.last_good:
        regions, _ = previous.last_good
        return Choice(regions, {r: 1 / len(regions) for r in regions},
                      serve(regions, f"last known good answer (fail mode last_known_good): {out}"),
                      basis="last_known_good")
    # Fail open: answer as if every region not drained were healthy (all of them when an
    # operator drained every one: a drain never empties a name).
    candidates = [v for v in views.values() if not v.drained] or list(views.values())
    assumed = {v.name: replace(v, healthy=True, drained=False, values=v.all_values)
               for v in candidates}
    as_if = {name: assumed.get(name, replace(v, healthy=False)) for name, v in views.items()}
    choice = _choose(record, as_if, None, now)
    assert choice is not None  # every candidate is usable in as_if
    why = f"every region is out, failing open (answering as if healthy): {out}"
    return replace(choice, reason=serve(choice.regions, why), basis="fail_open")


def _finish(record: Record, views: Mapping[str, RegionView], choice: Choice,
            previous: Decision | None, now: float) -> Decision:
    if choice.basis == "last_known_good" and previous and previous.last_good:
        values = previous.last_good[1]
    else:
        values = tuple(dict.fromkeys(v for r in choice.regions
                                     for v in _served(views[r], choice.basis)))
    reason = choice.reason
    if record.type == "CNAME" and len(values) > 1:
        # a CNAME holds one target: keep the largest share's first value
        top = max(choice.regions, key=lambda r: choice.shares.get(r, 0.0))
        values = (next(v for v in values if v in views[top].all_values),)
        reason += f" (CNAME holds one target: {names([top])})"
    canon = tuple(sorted({canonical_value(record.type, v) for v in values}))
    good = previous.last_good if previous else None
    if choice.basis in HEALTH_BASES:
        good = (choice.regions, canon)
    usable = tuple(r for r, v in views.items() if v.usable)
    by_region = {r: tuple(sorted({canonical_value(record.type, v)
                                  for v in _served(views[r], choice.basis)}))
                 for r in dict.fromkeys((*choice.regions, *usable))}
    changed_at = now
    if previous is not None and previous.values == canon:
        changed_at = previous.changed_at if previous.changed_at is not None else previous.at
    return Decision(name=record.name, type=record.type, ttl=record.ttl, policy=record.policy,
                    regions=choice.regions, values=canon, shares=dict(choice.shares),
                    basis=choice.basis, reason=reason, at=now, tier=choice.tier,
                    last_good=good, usable=usable, by_region=by_region,
                    changed_at=changed_at, hold_until=choice.hold_until)


def _served(view: RegionView, basis: str) -> tuple[str, ...]:
    """A region's values in an answer: healthy endpoints, or all when health is set aside."""
    if basis == "fail_open":
        return view.all_values
    if basis == "pinned":
        return view.values or view.all_values
    return view.values


def decide_all(cfg: Config, snapshot: HealthSnapshot, overrides: Overrides,
               previous: Mapping[DecisionKey, Decision], now: float,
               latencies: Mapping[str, Mapping[str, float]] | None = None) -> list[Decision]:
    """A decision for every record of the config (and with `networks:`, for every client
    network of it: record by record, each record's networks in `Config.network_names`
    order), in config order.

    Records that differ only by name (same policy, regions, endpoints and settings) and
    whose previous answers agree get the same decision: it is made once and copied, so
    10,000 records behind a few services cost a few decisions, not 10,000; a network
    that sees a record as another does (no settings, drains or vantage of its own) shares
    its decision too. `latencies` (vantage -> endpoint id -> ms) holds the live fleet
    vantages' latencies: a network whose vantage is among them is answered by them.
    """
    made: dict[tuple[object, ...], Decision] = {}
    views_of: dict[object, dict[str, RegionView]] = {}
    out = []
    networks = cfg.network_names or ("",)
    # a weighted answer on a server that cannot weight is served in equal shares: the
    # decision says so (and records in zones that can weight are decided apart)
    weigh = cfg.memo("record_weighing", lambda: [
        weighing_note(cfg, r.name) if r.policy == "weighted" else None for r in cfg.records])
    per_net = [_network_inputs(cfg, net, overrides, latencies) for net in networks]
    for i, rec in enumerate(cfg.records):
        one_rrset = weigh[i]
        for net, shapes, seens, ov, lat_id, lat, note in per_net:
            seen = seens[i]
            prev = previous.get(decision_key(rec.name, rec.type, net))
            if rec.name in ov.pinned:
                d = decide(seen, region_views(cfg, seen, snapshot, ov), ov, prev, now)
                d = as_served(d, one_rrset) if one_rrset else d
                out.append(_renamed(d, rec.name, net) if net else d)
                continue
            late = lat_id if rec.policy == "latency" else None
            shape = shapes[i]
            key = (shape, one_rrset, ov.drained, late, None if prev is None else (
                prev.regions, prev.values, prev.basis, prev.tier, prev.last_good,
                prev.changed_at))
            hit = made.get(key)
            if hit is None:
                vkey = (shape, ov.drained, late)
                views = views_of.get(vkey)
                if views is None:
                    views = views_of[vkey] = region_views(
                        cfg, seen, snapshot, ov, lat if late else None)
                hit = decide(seen, views, ov, prev, now)
                if late and note:
                    hit = replace(hit, reason=hit.reason + note)
                hit = made[key] = as_served(hit, one_rrset) if one_rrset else hit
                out.append(_renamed(hit, rec.name, net) if net else hit)
            else:
                out.append(_renamed(hit, rec.name, net))
    return out


def _network_inputs(cfg: Config, net: str, overrides: Overrides,
                    latencies: Mapping[str, Mapping[str, float]] | None
                    ) -> tuple[str, list[tuple[object, ...]], list[Record], Overrides,
                               str | None, Mapping[str, float] | None, str]:
    """What one network decides on: its records' shapes, its records as it sees them,
    its overrides, and whose latency answers it (an id that sets it apart, the
    latencies, a note for reasons)."""
    seens = cfg.memo(f"records/{net}", lambda: [
        cfg.record_for(r, net) if net else r for r in cfg.records])
    shapes = cfg.memo(f"record_shapes/{net}", lambda: [record_shape(r) for r in seens])
    ov = overrides.for_network(net) if net else overrides
    vantage = cfg.networks[net].vantage if net else None
    if vantage is None:
        return net, shapes, seens, ov, None, None, ""
    lat = (latencies or {}).get(vantage)
    if lat is not None:
        return net, shapes, seens, ov, vantage, lat, f" (latency from {vantage})"
    return net, shapes, seens, ov, "!" + vantage, None, (
        f" (latency: vantage {vantage} is not live; answered by the latency measured "
        "overall)")


def _renamed(decision: Decision, name: str, network: str = "") -> Decision:
    """The same decision for another name or network (dataclasses.replace costs 15 us:
    too much when 10,000 records share one decision)."""
    out = object.__new__(Decision)
    out.__dict__.update(decision.__dict__)
    out.__dict__["name"] = name
    out.__dict__["network"] = network
    out.__dict__.pop("key", None)  # cached for the original's name
    return out


def record_shape(record: Record) -> tuple[object, ...]:
    """Everything of a record that its decision depends on, but its name."""
    return (record.type, record.ttl, record.policy, record.tiers,
            tuple((record.weights or {}).items()), tuple(record.regions or ()),
            record.regions is None, record.fail_mode, record.failback_delay,
            record.latency_hysteresis_percent, record.latency_hysteresis_ms,
            record.latency_min_hold, record.pool)


def desired_records(decisions: list[Decision]) -> list[RecordSet]:
    """The resolved record sets the decisions ask for: one per record with an answer
    (per network, named by its set identifier, with `networks:`)."""
    return [RecordSet.make(d.name, d.type, d.ttl, d.values, set_identifier=d.network or None)
            for d in decisions if d.values]
