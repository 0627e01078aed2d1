"""The state's values as JSON, the same for every store (SQLite, etcd)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from failover.health import CheckState, EndpointHealth, HealthSnapshot, Outcome
from failover.state.store import Event, Override
from policies import Decision


def health_data(snapshot: HealthSnapshot) -> dict[str, Any]:
    return {"at": snapshot.at, "endpoints": {k: asdict(v) for k, v in
                                              snapshot.endpoints.items()}}


def health_from(data: Any) -> HealthSnapshot | None:
    if data is None:
        return None
    eps = {}
    for key, h in data["endpoints"].items():
        recent = tuple(Outcome(**o) for o in h.pop("recent", []))
        eps[key] = EndpointHealth(**h, recent=recent)
    return HealthSnapshot(at=data["at"], endpoints=eps)


def checks_data(states: Mapping[str, CheckState]) -> dict[str, Any]:
    return {k: asdict(v) for k, v in states.items()}


def checks_from(data: Any) -> dict[str, CheckState]:
    out = {}
    for key, v in (data or {}).items():
        v["recent"] = tuple(Outcome(**o) for o in v["recent"])
        out[key] = CheckState(**v)
    return out


def decisions_text(decisions: list[Decision]) -> str:
    # one decision at a time: one json.dumps of 10,000 holds the interpreter (and the
    # event loop that runs the probes) for a hundred milliseconds
    return "[" + ",".join(json.dumps({**asdict(d), "shares": dict(d.shares),
                                      "by_region": dict(d.by_region),
                                      "policy_shares": dict(d.policy_shares)})
                          for d in decisions) + "]"


def decisions_from(data: Any) -> dict[tuple[str, str], Decision]:
    out = {}
    for d in data or []:
        d["regions"], d["values"] = tuple(d["regions"]), tuple(d["values"])
        d["usable"] = tuple(d.get("usable", ()))
        d["by_region"] = {r: tuple(v) for r, v in d.get("by_region", {}).items()}
        if d.get("last_good"):
            d["last_good"] = (tuple(d["last_good"][0]), tuple(d["last_good"][1]))
        decision = Decision(**d)
        out[decision.key] = decision
    return out


def override_data(o: Override) -> dict[str, Any]:
    return asdict(o)


def override_from(data: dict[str, Any]) -> Override:
    return Override(**data)


def event_data(e: Event) -> dict[str, Any]:
    return {"at": e.at, "kind": e.kind, "subject": e.subject, "message": e.message,
            "detail": dict(e.detail)}


def event_from(data: dict[str, Any]) -> Event:
    return Event(data["at"], data["kind"], data["subject"], data["message"],
                 data.get("detail") or {})
