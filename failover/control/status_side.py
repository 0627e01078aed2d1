"""The status side: what the controller shows (/status, the page, /readyz, the gauges).

Every role calls `changed()` when something /status shows moved, so /status is rebuilt
only then (or, when it is read, every STATUS_REFRESH for times and health details). /status and the page
are built by functions run on a thread, their inputs taken on the loop; the records
part is kept between builds and made again only when a decision changed.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from failover.cluster.fleet_side import FleetSide
from failover.control.decider import Decider
from failover.control.journal import Journal
from failover.control.probe_side import ProbeSide
from failover.control.writer import CONFLICTS_STUCK, Writer
from failover.control.zone_fence import ZoneFence
from failover.errors import FailoverError
from failover.state.held import HeldOverrides
from failover.state.store import as_overrides

if TYPE_CHECKING:
    from failover.config import Config
    from failover.control.house import House, Tick
    from policies import Decision

STATUS_REFRESH = 2.0  # seconds between rebuilds of /status when nothing changed


class StatusSide:
    """/status, the page, the problems that make /readyz degraded, and the gauges."""

    def __init__(self, house: House, *, writer: Writer, zone_fence: ZoneFence,
                 journal: Journal, fleet: FleetSide, probes: ProbeSide,
                 decider: Decider) -> None:
        self.house = house
        self.writer, self.zone_fence, self.journal = writer, zone_fence, journal
        self.fleet, self.probes, self.decider = fleet, probes, decider
        self.records_json: tuple[int, str] | None = None  # /status's records, by version
        self.degraded_since: float | None = None  # when /readyz last turned degraded
        self.gauged: tuple[object, object, int] | None = None  # (config, board, version)

    def problems(self) -> list[str]:
        """Why the controller is degraded (for /readyz, /status and the metric): DNS
        failing for longer than a tick or two, the state store failing, managed names it
        may not write. Empty when all is well."""
        h = self.house
        w = self.writer
        out = []
        since = h.repeats.since("dns")
        if since is not None and h.clock() - since > max(2.0, 2 * h.reconcile_interval):
            waiting = len(w.urgent)
            out.append(f"DNS failing for {h.clock() - since:.0f} s: {w.dns_error}"
                       + (f"; {waiting} changed answer(s) will be written when DNS answers"
                          if waiting else ""))
        if self.zone_fence.held_by is not None:
            out.append(f"not writing DNS: {self.zone_fence.held_by}")
        if w.conflicts >= CONFLICTS_STUCK:
            out.append(f"DNS writes refused as conflicts {w.conflicts} times in a row "
                       f"(re-read and re-planned each time): {w.dns_error}")
        if self.journal.state_error is not None:
            out.append(self.journal.state_error)
        if isinstance(h.state, HeldOverrides) and (held := h.state.problem()):
            out.append(held)
        out += self.fleet.problems()
        if w.refused:
            since = h.repeats.since("refused") or h.clock()
            out.append(f"plan refused by safety guards for {h.clock() - since:.0f} s, "
                       f"{len(w.refused)} name(s) not written: "
                       + "; ".join(w.refusal[:3])
                       + (f"; and {len(w.refusal) - 3} more" if len(w.refusal) > 3
                          else "") + " (`failover run --force` applies it)")
        if w.blocked:
            first = heapq.nsmallest(3, w.blocked)
            more = len(w.blocked) - len(first)
            out.append(f"{len(w.blocked)} managed name(s) it may not write: " + "; ".join(
                f"{n} {w.blocked[n]}" for n in first) + (f"; and {more} more" if more else ""))
        return out

    def update_gauges(self, snapshot: Any, overrides: list[Any], now: float) -> None:
        """Set the gauges from this tick's health, overrides and what is left to write."""
        h = self.house
        m = h.metrics
        seen = (h.cfg, h.board, h.board.version)
        if seen != self.gauged:
            # only when a status flipped (or the config changed): every endpoint on every
            # tick was work growing with the endpoints, not with what changed
            self.gauged = seen
            # the board now, not the tick's snapshot: a flip while the tick decided is
            # counted in this version, and must show in these gauges
            snapshot = h.board.snapshot(now)
            regions: dict[str, bool] = {}
            for rname, _, eid, _ in h.cfg.all_endpoints():
                healthy = snapshot.endpoints[eid].healthy
                m.endpoint_healthy.labels(rname, eid).set(1 if healthy else 0)
                regions[rname] = regions.get(rname, False) or healthy
            for rname, healthy in regions.items():
                m.region_healthy.labels(rname).set(1 if healthy else 0)
        for kind in ("drain", "pin"):
            m.overrides.labels(kind).set(sum(1 for o in overrides
                                             if o.kind == kind and o.active(now)))
        m.override_started.clear()
        for o in overrides:
            if o.active(now):
                m.override_started.labels(o.kind, o.target).set(o.at)
        m.unserved.set(len(self.writer.urgent) + len(self.writer.backlog))
        kinds = {"owned by another controller": 0, "no marker": 0, "cannot be written": 0}
        for why in self.writer.blocked.values():
            kinds["owned by another controller" if why.startswith("owned by") else
                  "no marker" if "no failover marker" in why else "cannot be written"] += 1
        for reason, n in kinds.items():
            m.not_written.labels(reason).set(n)
        problems = self.problems()
        m.degraded.set(1 if problems else 0)
        self.note_degraded(problems, now)
        self.fleet.update_gauges()
        lag = self.probes.schedule_lag()
        if lag is not None:
            m.schedule_lag.set(lag)

    def note_degraded(self, problems: list[str], now: float) -> None:
        """A history line when /readyz turns degraded and when it clears (what the
        notification sinks tell as `degraded`)."""
        h = self.house
        if problems and self.degraded_since is None:
            self.degraded_since = now
            # the problems themselves are in the history already, as they happened
            h.event("controller", "readiness", f"/readyz degraded ({len(problems)} "
                    "problem(s), listed in the detail)", {"degraded": True, "problems": problems})
        elif not problems and self.degraded_since is not None:
            lasted = now - self.degraded_since
            self.degraded_since = None
            h.event("controller", "readiness", f"no longer degraded (after {lasted:.0f} s)",
                    {"degraded": False, "problems": []})

    def status(self) -> dict[str, Any]:
        """Everything `failover status` and /status show, as JSON-ready data."""
        data: dict[str, Any] = json.loads(self.status_maker()())
        return data

    def status_maker(self) -> Callable[[], bytes]:
        """/status as JSON, by a function to run on a thread: its inputs are taken now,
        on the loop. The records part (10,000 records: megabytes) is kept between builds
        and made again only when a decision changed, one record at a time so the loop,
        which runs the probes, is never held for long."""
        h = self.house
        now = h.clock()
        snapshot, overrides = h.board.snapshot(now), self.journal.read_overrides()
        cfg, ready, dry_run, last = h.cfg, h.ready, h.dry_run, h.last
        problems, blocked = self.problems(), dict(self.writer.blocked)
        cached, version = self.records_json, self.decider.decisions_version
        decisions = None if cached is not None and cached[0] == version else list(
            h.decisions.values())
        cluster = self.fleet.cluster_maker()
        notify = h.notifier.status() if h.notifier is not None else []

        def make() -> bytes:
            built = build_status(cfg, snapshot, overrides, [], now, ready=ready,
                                 dry_run=dry_run, last=last, problems=problems,
                                 not_written=blocked)
            if notify:
                built["notify"] = notify
            if cluster is not None:
                built["cluster"] = cluster()
            head = json.dumps(built)
            if decisions is None:
                assert cached is not None
                records = cached[1]
            else:
                records = "[" + ",".join(json.dumps(r) for r in status_records(
                    cfg, decisions)) + "]"
                self.records_json = (version, records)
            return head.replace('"records": []', '"records": ' + records, 1).encode() + b"\n"

        return make

    def page_maker(self) -> Callable[[], bytes]:
        """The status page (failover.page) by a function to run on a thread: what DNS
        holds is copied here, on the loop; /status, the history and the HTML there."""
        from failover import page

        h = self.house
        make_status = self.status_maker()
        state, now, cfg = h.state, h.clock(), h.cfg
        served: dict[tuple[str, ...], list[str]] = {}
        for sets in (h.ledger.actual or {}).values():
            for (name, rtype, sid), rs in sets.items():
                served.setdefault((name, rtype), []).extend(rs.values)
                if sid is not None:  # a client network's view or location, apart
                    served.setdefault((name, rtype, sid), []).extend(rs.values)

        def make() -> bytes:
            status = json.loads(make_status())
            try:
                events = state.history(limit=50)
                decisions = state.history(since=now - 86400, kind="decision", limit=20_000)
            except FailoverError as exc:  # the page still shows what the controller holds
                status.setdefault("problems", []).append(f"history unavailable: {exc}")
                events, decisions = [], []
            return page.render(status, events, decisions, served, now, page.configured(cfg))

        return make

    def status_due(self, built_at: float, version: int, asked: bool = True) -> bool:
        """Whether /status built at `built_at` (steady clock) from `version` is stale:
        something it shows changed, or, when someone `asked` for it, STATUS_REFRESH
        passed (health details, times). Not asked, it is not made again on a timer:
        10,000 endpoints rebuilt every 2 s for nobody was a fifth of the CPU."""
        return version != self.house.version or (
            asked and self.house.clock() - built_at >= STATUS_REFRESH)


def status_records(cfg: Config, decisions: list[Decision],
                   served: Mapping[Any, list[str]] | None = None
                   ) -> list[dict[str, Any]]:
    """Each record's decision, desired answer (and served answer, when asked) for status."""
    records = []
    pools = cfg.memo("record_pools", lambda: {(r.name, r.type): r.pool for r in cfg.records})
    several = cfg.zones is not None
    for d in decisions:
        entry: dict[str, Any] = {**d.to_dict(), "desired": list(d.values)}
        if pools.get(d.record_key):
            entry["pool"] = pools[d.record_key]
        if several:
            entry["zone"] = cfg.zone_of(d.name)
        if served is not None:
            entry["served"] = served.get(d.key if d.network else (d.name, d.type), [])
        records.append(entry)
    return records


def build_status(cfg: Config, snapshot: Any, overrides: list[Any], decisions: list[Decision],
                 now: float, *, ready: bool | None = None, dry_run: bool | None = None,
                 last: Tick | None = None,
                 served: Mapping[Any, list[str]] | None = None,
                 problems: list[str] | None = None,
                 not_written: dict[str, str] | None = None) -> dict[str, Any]:
    """Regions, endpoints with health and reason, overrides, and per record the answers."""
    active = as_overrides(overrides, now)
    by_region: dict[str, list[dict[str, Any]]] = {r: [] for r in cfg.regions}
    for rname, pool, eid, ep in cfg.all_endpoints():
        h = snapshot.endpoints.get(eid)
        by_region[rname].append({
            "id": eid, "pool": pool, "address": ep.address, "check": ep.check,
            "healthy": h.healthy if h else True, "since": h.since if h else None,
            "reason": h.reason if h else "", "latency_ms": h.latency_ms if h else None,
            "recent": [{"at": o.at, "ok": o.ok, "reason": o.reason}
                       for o in (h.recent if h else ())]})
    regions = {rname: {"healthy": any(e["healthy"] for e in eps) or not eps,
                       "drained": rname in active.drained, "endpoints": eps}
               for rname, eps in by_region.items()}
    records = status_records(cfg, decisions, served)
    out: dict[str, Any] = {
        "zone": cfg.zone, "provider": cfg.provider.type, "at": now,
        "zones": [{"zone": z.zone, "provider": z.provider.type} for z in cfg.zone_specs],
        "regions": regions,
        "overrides": [{"kind": o.kind, "target": o.target, "region": o.region, "who": o.who,
                       "why": o.why, "at": o.at, "expires": o.expires,
                       "active": o.active(now)} for o in overrides],
        "records": records}
    if ready is not None:
        out["ready"] = ready
        out["dry_run"] = dry_run
    if problems is not None:
        out["problems"] = problems
        out["not_written"] = [{"name": n, "why": why} for n, why in sorted(
            (not_written or {}).items())]
    if last is not None and last.at:
        out["last_tick"] = {"at": last.at, "applied": last.applied, "error": last.error,
                            "refused": last.refused}
    return out
