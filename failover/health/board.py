"""The health board: every check's state machine, combined into endpoint health.

It holds state but does no I/O and reads no clock: results arrive with their time.
Leaf checks are tracked per (endpoint, check, vantage); an endpoint's status is its
check evaluated over them (vantage quorum, CALCULATED thresholds, inversion, disabled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from failover.health.snapshot import EndpointHealth, HealthSnapshot
from failover.health.tracker import CheckState, observe, vantage_healthy

if TYPE_CHECKING:
    from failover.config import Config, Endpoint

LOCAL = "local"


@dataclass(frozen=True)
class Transition:
    """An endpoint's status flipped."""

    endpoint: str
    health: EndpointHealth
    previous: EndpointHealth


class HealthBoard:
    """Endpoint health from probe results, with Route 53's semantics."""

    def __init__(self, cfg: Config, vantages: Iterable[str] = (LOCAL,),
                 local_name: str = LOCAL) -> None:
        self._cfg = cfg
        self._vantages = tuple(vantages)
        self.local_name = local_name  # this instance's vantage, as reasons name it
        self.local_changes = 0  # bumped when a leaf check's status flips at this vantage
        self.version = 0  # bumped when an endpoint's status flips (gauges follow it)
        self._changed: set[tuple[str, str, str]] = set()  # local states not yet saved
        self._states: dict[tuple[str, str, str], CheckState] = {}
        self._endpoints: dict[str, tuple[Endpoint, str | None]] = {}
        self._health: dict[str, EndpointHealth] = {}
        # endpoints whose check is one leaf, neither inverted nor disabled, with its
        # vantage threshold: their health is that leaf's state, without evaluating
        self._plain: dict[str, int] = {}
        for _, _, eid, ep in cfg.all_endpoints():
            self._endpoints[eid] = (ep, ep.check)
            self._health[eid] = self._evaluate(eid, ep.check)
            tmpl = cfg.checks[ep.check] if ep.check is not None else None
            if tmpl is not None and tmpl.type != "CALCULATED" and not tmpl.disabled \
                    and not tmpl.inverted:
                self._plain[eid] = tmpl.vantage_threshold_percent

    def observe(self, endpoint: str, check: str, ok: bool, reason: str, at: float,
                latency_ms: float | None = None, vantage: str = LOCAL) -> Transition | None:
        """Record one probe result of a leaf check; return the endpoint's flip, if any.

        Raises KeyError for an endpoint or check the config does not have.
        """
        _, top = self._endpoints[endpoint]
        threshold = self._cfg.checks[check].failure_threshold
        key = (endpoint, check, vantage)
        old = self._states.get(key, CheckState())
        self._states[key] = new = observe(old, ok, reason, at, threshold, latency_ms)
        if vantage == LOCAL and (new.streak != old.streak or new.healthy != old.healthy):
            # what a restart must not forget: a status, and the results towards a flip
            # (not the recent results and latency every probe moves)
            self._changed.add(key)
            if new.healthy != old.healthy:
                self.local_changes += 1
        before = self._health[endpoint]
        percent = self._plain.get(endpoint)
        if percent is not None and top == check and self._vantages == (vantage,):
            # one vantage, one leaf: what _evaluate would say, at a fraction of the cost
            # (this runs for every probe result)
            healthy = vantage_healthy(new.healthy, 1, percent)
            if healthy != before.healthy:
                now = EndpointHealth(healthy, new.reason, at, new.latency_ms, new.recent)
                self._health[endpoint] = now
                self.version += 1
                return Transition(endpoint, now, before)
            self._health[endpoint] = EndpointHealth(healthy, new.reason, before.since,
                                                    new.latency_ms, new.recent)
            return None
        now = self._evaluate(endpoint, top)
        if now.healthy != before.healthy:
            now = EndpointHealth(now.healthy, now.reason, at, now.latency_ms, now.recent)
            self._health[endpoint] = now
            self.version += 1
            return Transition(endpoint, now, before)
        self._health[endpoint] = EndpointHealth(now.healthy, now.reason, before.since,
                                                now.latency_ms, now.recent)
        return None

    def latency(self, endpoint: str) -> float | None:
        """An endpoint's smoothed latency now (ms), None when not measured."""
        h = self._health.get(endpoint)
        return h.latency_ms if h is not None else None

    def vantage_latencies(self, vantages: Iterable[str]) -> dict[str, dict[str, float]]:
        """Each endpoint's smoothed latency at each of `vantages` that is live here
        (this instance's, or one whose view the fleet counts), by vantage then endpoint:
        the latencies a client network with that vantage is answered by. An endpoint
        with several checks takes its lowest."""
        local = {v: (LOCAL if v == self.local_name else v) for v in vantages}
        live = {key: v for v, key in local.items() if key in self._vantages}
        out: dict[str, dict[str, float]] = {v: {} for v in live.values()}
        for (endpoint, _, vantage), state in self._states.items():
            name = live.get(vantage)
            if name is None or state.latency_ms is None:
                continue
            seen = out[name].get(endpoint)
            if seen is None or state.latency_ms < seen:
                out[name][endpoint] = state.latency_ms
        return out

    def export(self) -> dict[str, CheckState]:
        """Every leaf state machine of this vantage, keyed `endpoint|check|vantage`, to keep
        across restarts (other vantages' views are theirs to keep)."""
        self._changed = set()
        return {"|".join(k): v for k, v in self._states.items() if k[2] == LOCAL}

    def take_changed(self) -> dict[str, CheckState]:
        """The leaf states of this vantage whose status or streak changed since the last
        call (or `export`), keyed as `export` keys them: what a save must write."""
        changed, self._changed = self._changed, set()
        return {"|".join(k): self._states[k] for k in changed if k in self._states}

    def local_states(self) -> dict[tuple[str, str], CheckState]:
        """This vantage's leaf states by (endpoint, check): what a fleet member publishes."""
        return {(e, c): s for (e, c, v), s in self._states.items() if v == LOCAL}

    def set_remote(self, views: Mapping[str, Mapping[tuple[str, str], CheckState]],
                   at: float) -> list[Transition]:
        """Take the other vantages' leaf states (a fleet: their published views; a vantage
        absent here has expired) and return the endpoints whose status flipped."""
        self._states = {k: s for k, s in self._states.items() if k[2] == LOCAL}
        for vantage, states in views.items():
            for (endpoint, check), state in states.items():
                if endpoint in self._endpoints and check in self._cfg.checks:
                    self._states[(endpoint, check, vantage)] = state
        self._vantages = (LOCAL, *sorted(v for v in views if v != LOCAL))
        flips = []
        for eid, (_, top) in self._endpoints.items():
            before = self._health[eid]
            now = self._evaluate(eid, top)
            if now.healthy != before.healthy:
                now = replace(now, since=at)
                flips.append(Transition(eid, now, before))
                self.version += 1
            else:
                now = replace(now, since=before.since)
            self._health[eid] = now
        return flips

    def restore(self, states: dict[str, CheckState], snapshot: HealthSnapshot | None) -> None:
        """Continue from kept state machines (a restart must not forget an outage).

        Entries for endpoints or checks the config no longer has are ignored.
        """
        for key, state in states.items():
            endpoint, check, vantage = key.split("|", 2)
            if endpoint in self._endpoints and check in self._cfg.checks:
                self._states[(endpoint, check, vantage)] = state
        for eid, (_, top) in self._endpoints.items():
            now = self._evaluate(eid, top)
            kept = snapshot.endpoints.get(eid) if snapshot else None
            since = kept.since if kept is not None and kept.healthy == now.healthy else None
            self._health[eid] = EndpointHealth(now.healthy, now.reason, since, now.latency_ms,
                                               now.recent)
        self.version += 1

    def snapshot(self, at: float) -> HealthSnapshot:
        """Every endpoint's health now."""
        return HealthSnapshot(at=at, endpoints=dict(self._health))

    def state(self, endpoint: str, check: str, vantage: str = LOCAL) -> CheckState:
        """One leaf check's raw state machine (for status output and tests)."""
        return self._states.get((endpoint, check, vantage), CheckState())

    def _evaluate(self, endpoint: str, check: str | None) -> EndpointHealth:
        if check is None:
            return EndpointHealth(True, "no health check: always healthy")
        tmpl = self._cfg.checks[check]
        if tmpl.disabled:
            health = EndpointHealth(True, "check disabled")
        elif tmpl.type == "CALCULATED":
            health = self._calculated(endpoint, tmpl.child_checks or [], tmpl.health_threshold)
        else:
            health = self._leaf(endpoint, check, tmpl.vantage_threshold_percent)
        if tmpl.inverted:
            return EndpointHealth(not health.healthy, f"inverted: {health.reason}", health.since,
                                  health.latency_ms, health.recent)
        return health

    def _leaf(self, endpoint: str, check: str, percent: int) -> EndpointHealth:
        states = [self._states.get((endpoint, check, v), CheckState()) for v in self._vantages]
        healthy = vantage_healthy(sum(s.healthy for s in states), len(states), percent)
        lats = [s.latency_ms for s in states if s.latency_ms is not None]
        latency = sorted(lats)[len(lats) // 2] if lats else None
        if len(states) == 1:
            s = states[0]
            return EndpointHealth(healthy, s.reason, s.since, latency, s.recent)
        agree = sum(s.healthy for s in states)
        names = [self.local_name if v == LOCAL else v for v in self._vantages]
        down = [f"{n}: {s.reason}" for n, s in zip(names, states, strict=True) if not s.healthy]
        own = states[0]
        return EndpointHealth(healthy, f"{agree} of {len(states)} vantages healthy, more than "
                              f"{percent}% needed" + (f" ({'; '.join(down)})" if down else ""),
                              None, latency, own.recent)

    def _calculated(self, endpoint: str, children: list[str],
                    threshold: int | None) -> EndpointHealth:
        results = [(c, self._evaluate(endpoint, c)) for c in children]
        up = sum(h.healthy for _, h in results)
        need = len(results) if threshold is None else threshold
        lats = [h.latency_ms for _, h in results if h.latency_ms is not None]
        reason = f"{up} of {len(results)} child checks healthy, {need} needed"
        down = [f"{c}: {h.reason}" for c, h in results if not h.healthy]
        if up < need and down:
            reason += f" ({'; '.join(down)})"
        return EndpointHealth(up >= need, reason, None, min(lats) if lats else None)


def initial_snapshot(cfg: Config, now: float) -> HealthSnapshot:
    """The snapshot before any probe has run, by Route 53's starting rules.

    New checks start healthy; inverted ones unhealthy; a disabled check is healthy before
    inversion (disabled + inverted is Route 53's way to stop traffic); no check at all
    is always healthy.
    """
    return HealthBoard(cfg).snapshot(now)
