"""`failover simulate`: replay a scenario through the real health and policy code on a
virtual clock, no sockets, and print the DNS timeline; expectations make it a CI check.

A scenario (YAML):

    duration: 120                     # seconds of virtual time
    events:                           # what happens to endpoints, and when
      - {at: 30, region: us-east-1, state: down}          # or endpoint: us-east-1/127.0.1.1
      - {at: 60, region: us-east-1, state: up}
      - {at: 70, region: eu-west-1, state: slow, latency_ms: 3000}
      - {at: 80, region: eu-west-1, state: flapping, period: 1}
    expect:                           # what must be served, and when
      - {at: 40, name: api.example.test., answers: [127.0.2.1]}
      - {at: 40, name: api.example.test., network: europe, answers: [127.0.2.1]}

Probes fire on their intervals at the phases the real scheduler uses; `down` fails at
once (connection refused), `slow` beyond the check's timeout fails when the timeout
expires, `flapping` alternates up and down every `period` seconds. The controller ticks
every second and on every health change, and writes nothing before the first full probe
round, as the real one does; a write is served at once.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from failover import plan as planning
from failover.config import Config
from failover.errors import ConfigError, ConfigIssue
from failover.health import HealthBoard
from failover.probes.scheduler import phases
from failover.probes.target import ProbeTarget, targets_for
from failover.records import RecordSet, absolute_name
from failover.yamlsource import YamlProblem, format_path, load_yaml
from policies import Decision, DecisionKey, Overrides, decide_all, desired_records
from policies.native import native_desired

TICK = 1.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioEvent(_Model):
    at: Annotated[float, Field(ge=0)]
    region: str | None = None
    endpoint: str | None = None
    state: Literal["up", "down", "slow", "flapping"]
    latency_ms: Annotated[float, Field(gt=0)] = 1.0
    period: Annotated[float, Field(gt=0)] = 1.0


class Expectation(_Model):
    at: Annotated[float, Field(ge=0)]
    name: str
    type: Literal["A", "AAAA", "CNAME"] = "A"
    answers: list[str]
    network: str | None = None  # one client network's answer (networks:); default: default


class Scenario(_Model):
    duration: Annotated[float, Field(gt=0, le=86400)]
    events: list[ScenarioEvent] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)


def load_scenario(path: Path, cfg: Config) -> Scenario:
    """Read and validate a scenario against the config. Raises ConfigError (exit 2)."""
    try:
        src = load_yaml(path.read_text())
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read scenario: {exc.strerror}")],
                          str(path), "scenario") from None
    except YamlProblem as exc:
        raise ConfigError(exc.issues, str(path), "scenario") from None
    try:
        scenario = Scenario.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError([ConfigIssue(format_path(tuple(e["loc"])), e["msg"],
                                       src.line_of(tuple(e["loc"]))) for e in exc.errors()],
                          str(path), "scenario") from None
    endpoints = {eid for _, _, eid, _ in cfg.all_endpoints()}
    issues = []
    for i, ev in enumerate(scenario.events):
        where: tuple[str | int, ...] = ("events", i)
        if (ev.region is None) == (ev.endpoint is None):
            issues.append(ConfigIssue(format_path(where), "give one of region or endpoint",
                                      src.line_of(where)))
        elif ev.region is not None and ev.region not in cfg.regions:
            issues.append(ConfigIssue(format_path((*where, "region")),
                                      f"unknown region '{ev.region}'",
                                      src.line_of((*where, "region"))))
        elif ev.endpoint is not None and ev.endpoint not in endpoints:
            issues.append(ConfigIssue(format_path((*where, "endpoint")),
                                      f"unknown endpoint '{ev.endpoint}' (endpoints: "
                                      f"{', '.join(sorted(endpoints))})",
                                      src.line_of((*where, "endpoint"))))
    for i, ev in enumerate(scenario.events):
        if ev.at > scenario.duration:
            where = ("events", i, "at")
            issues.append(ConfigIssue(format_path(where), f"at {ev.at:g} s is after the "
                                      f"scenario's end (duration {scenario.duration:g} s): it "
                                      "would never happen", src.line_of(where)))
    records = {(r.name, r.type) for r in cfg.records}
    for i, ex in enumerate(scenario.expect):
        if (absolute_name(ex.name), ex.type) not in records:
            where = ("expect", i, "name")
            issues.append(ConfigIssue(format_path(where), f"{ex.name} {ex.type} is not a record "
                                      "of the config", src.line_of(where)))
        if ex.network is not None and ex.network not in cfg.networks:
            where = ("expect", i, "network")
            known = ", ".join(cfg.networks) or "none: the config defines no networks"
            issues.append(ConfigIssue(format_path(where), f"unknown network '{ex.network}' "
                                      f"(networks: {known})", src.line_of(where)))
        if ex.at > scenario.duration:
            where = ("expect", i, "at")
            issues.append(ConfigIssue(format_path(where), f"at {ex.at:g} s is after the "
                                      f"scenario's end (duration {scenario.duration:g} s): it "
                                      "would never be checked", src.line_of(where)))
    if issues:
        raise ConfigError(issues, str(path), "scenario")
    return scenario


@dataclass
class Timeline:
    """What happened: events in time order, and whether the expectations held."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    checked: int = 0


def _state(scenario: Scenario, endpoint: str, t: float) -> ScenarioEvent | None:
    region = endpoint.split("/", 1)[0]
    current = None
    for ev in scenario.events:
        if ev.at <= t and (ev.endpoint == endpoint or ev.region == region):
            current = ev
    return current


def _result(scenario: Scenario, cfg: Config, target: ProbeTarget,
            t: float) -> tuple[float, bool, str, float | None]:
    """(time the result arrives, ok, reason, latency ms) of a probe started at `t`."""
    ev = _state(scenario, target.endpoint, t)
    state = ev.state if ev else "up"
    if state == "flapping" and ev is not None:
        state = "up" if int((t - ev.at) // ev.period) % 2 else "down"
    if state == "down":
        return t, False, "connection refused", None
    latency = ev.latency_ms if ev is not None and ev.state == "slow" else 1.0
    limit = target.response_timeout if target.type != "TCP" else target.connect_timeout
    if latency / 1000 > limit:
        return t + limit, False, f"timeout after {limit:g} s waiting for the response", None
    return t + latency / 1000, True, "status 200" if target.type != "TCP" else "connected", latency


def simulate(cfg: Config, scenario: Scenario) -> Timeline:
    """Run the scenario; pure: no sockets, no clock."""
    board = HealthBoard(cfg)
    targets = targets_for(cfg)
    offsets = phases(targets)
    native = cfg.provider.type == "route53"
    queue: list[tuple[float, int, str, Any]] = []
    seq = 0

    def push(at: float, kind: str, item: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, kind, item))

    for target in targets:
        push(offsets[target.key], "probe", target)
    t = 0.0
    while t <= scenario.duration:
        push(t, "tick", None)
        t += TICK
    for ex in scenario.expect:
        push(ex.at, "expect", ex)
    timeline = Timeline()
    seen: set[str] = set()
    ready = not targets
    actual: list[RecordSet] = []
    previous: dict[DecisionKey, Decision] = {}
    managed = {(r.name, r.type) for r in cfg.records}
    while queue:
        at, _, kind, item = heapq.heappop(queue)
        if at > scenario.duration:
            break
        if kind == "probe":
            target = item
            done, ok, reason, latency = _result(scenario, cfg, target, at)
            push(done, "result", (target, ok, reason, latency))
            push(at + target.interval, "probe", target)
        elif kind == "result":
            target, ok, reason, latency = item
            seen.add(target.key)
            flip = board.observe(target.endpoint, target.check, ok, reason, at, latency)
            if flip is not None:
                timeline.events.append({"t": round(at, 3), "kind": "health",
                                        "endpoint": flip.endpoint,
                                        "healthy": flip.health.healthy,
                                        "reason": flip.health.reason})
                push(at, "tick", None)
            if not ready and len(seen) >= len(targets):
                ready = True
                push(at, "tick", None)
        elif kind == "tick" and ready:
            decisions = decide_all(cfg, board.snapshot(at), Overrides(), previous, at)
            for d in decisions:
                before = previous.get(d.key)
                if before is None or before.values != d.values:
                    timeline.events.append({"t": round(at, 3), "kind": "decision",
                                            "record": f"{d.name} {d.type}" + (
                                                f" ({d.network})" if d.network else ""),
                                            "answers": list(d.values), "reason": d.reason})
            previous = {d.key: d for d in decisions}
            desired = (native_desired(cfg, decisions) if native and not cfg.networks
                       else desired_records(decisions))
            changes = planning.diff(desired, actual, managed, zone=cfg.zone)
            if changes:
                actual = planning.apply_to(actual, changes)
                timeline.events.append({"t": round(at, 3), "kind": "dns",
                                        "summary": changes.summary(),
                                        "changes": planning.to_json(changes)["changes"]})
        elif kind == "expect":
            ex = item
            key = (absolute_name(ex.name), ex.type)
            net = (ex.network or "default") if cfg.networks else None
            served = sorted({v for rs in actual if (rs.name, rs.type) == key
                             and rs.set_identifier == net for v in rs.values})
            want = sorted(RecordSet.make(key[0], ex.type, 0, ex.answers).values)
            timeline.checked += 1
            ok = served == want
            label = f"{key[0]} {ex.type}" + (f" ({net})" if net else "")
            timeline.events.append({"t": round(at, 3), "kind": "expect", "record": label,
                                    "want": want, "served": served, "ok": ok})
            if not ok:
                timeline.failures.append(f"at t={at:g} s {label} serves "
                                         f"{served or 'nothing'}, expected {want}")
    return timeline


def render(timeline: Timeline) -> str:
    """The timeline for people."""
    lines = []
    for e in timeline.events:
        t = f"t={e['t']:>8.3f}s"
        if e["kind"] == "health":
            state = "healthy" if e["healthy"] else "UNHEALTHY"
            lines.append(f"{t} health   {e['endpoint']} {state}: {e['reason']}")
        elif e["kind"] == "decision":
            lines.append(f"{t} decision {e['record']} -> {','.join(e['answers']) or '-'}: "
                         f"{e['reason']}")
        elif e["kind"] == "dns":
            lines.append(f"{t} dns      {e['summary']}")
        else:
            mark = "ok  " if e["ok"] else "FAIL"
            lines.append(f"{t} expect   {mark} {e['record']} serves "
                         f"{','.join(e['served']) or '-'} (expected {','.join(e['want'])})")
    lines.append(f"{timeline.checked - len(timeline.failures)} of {timeline.checked} "
                 "expectations hold")
    return "\n".join(lines)
