"""The state's values as JSON, the same for every store (SQLite, etcd).

What is read back is checked before it is used: a fleet's store is shared (whoever can
write under the etcd prefix can put anything there), so a value of the wrong shape is
skipped and named (a WARNING naming its key, once), never trusted as is and never fatal.
Checking a value's shape is all this module does: whether a decision's regions and
addresses are the config's is `policies.stored`'s question.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from failover.health import CheckState, EndpointHealth, HealthSnapshot, Outcome
from failover.state.store import Event, Override
from policies import Decision, DecisionKey

log = logging.getLogger(__name__)

Skip = Callable[[str, str], None]  # (the stored value's key, why it cannot be used)


class Skipped:
    """Names a stored value that cannot be used: a WARNING with its key and why, said once
    per key and reason (a bad key read at every tick is one line, not one a tick)."""

    LIMIT = 10_000  # (key, reason) pairs remembered; more (junk written in bulk) starts over

    def __init__(self) -> None:
        self._said: set[tuple[str, str]] = set()

    def __call__(self, key: str, why: str) -> None:
        if (key, why) in self._said:
            return
        if len(self._said) >= self.LIMIT:
            self._said.clear()
        self._said.add((key, why))
        log.warning("event=stored_value_skipped key=%r reason=%r", key, why)


def why_not(exc: ValidationError) -> str:
    """A validation error in one line: where and what, never the value (it may be long)."""
    errors = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
                     for e in errors[:3])
    return text + (f"; and {len(errors) - 3} more" if len(errors) > 3 else "")


# ------------------------------------------------------------ the stored shapes

class _Stored(BaseModel):
    """A value as a store gives it back: exact types (no "1" for 1, no 1 for true),
    finite numbers; fields a newer version added are ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


Time = float  # seconds since the epoch
Text = Annotated[str, Field(max_length=10_000)]
Names = Annotated[list[Text], Field(max_length=10_000)]


class _Outcome(_Stored):
    at: Time
    ok: bool
    reason: Text


Recent = Annotated[list[_Outcome], Field(max_length=100)]


class _Check(_Stored):
    healthy: bool = True
    since: Time | None = None
    streak: Annotated[int, Field(ge=0, le=1000)] = 0
    reason: Text = CheckState().reason
    recent: Recent = []
    latency_ms: Annotated[float, Field(ge=0)] | None = None

    def value(self) -> CheckState:
        return CheckState(self.healthy, self.since, self.streak, self.reason,
                          tuple(Outcome(o.at, o.ok, o.reason) for o in self.recent),
                          self.latency_ms)


class _Endpoint(_Stored):
    healthy: bool
    reason: Text
    since: Time | None = None
    latency_ms: Annotated[float, Field(ge=0)] | None = None
    recent: Recent = []

    def value(self) -> EndpointHealth:
        return EndpointHealth(self.healthy, self.reason, self.since, self.latency_ms,
                              tuple(Outcome(o.at, o.ok, o.reason) for o in self.recent))


class _Snapshot(_Stored):
    at: Time
    endpoints: dict[str, Any]


class _Decision(_Stored):
    name: Text
    type: Literal["A", "AAAA", "CNAME"]
    ttl: Annotated[int, Field(ge=0, le=2**31 - 1)]
    policy: Literal["failover", "weighted", "latency"]
    regions: Names
    values: Names
    shares: dict[Text, Annotated[float, Field(ge=0, le=1)]]
    basis: Literal["health", "hold", "pinned", "fail_open", "last_known_good", "closed"]
    reason: Text
    at: Time
    tier: Annotated[int, Field(ge=0, le=1000)] | None = None
    last_good: Annotated[list[Names], Field(min_length=2, max_length=2)] | None = None
    usable: Names = []
    by_region: dict[Text, Names] = {}
    changed_at: Time | None = None
    hold_until: Time | None = None
    policy_shares: dict[Text, Annotated[float, Field(ge=0, le=1)]] = {}
    shares_note: Text = ""
    network: Text = ""

    def value(self) -> Decision:
        good = self.last_good
        return Decision(
            name=self.name, type=self.type, ttl=self.ttl, policy=self.policy,
            regions=tuple(self.regions), values=tuple(self.values), shares=dict(self.shares),
            basis=self.basis, reason=self.reason, at=self.at, tier=self.tier,
            last_good=None if good is None else (tuple(good[0]), tuple(good[1])),
            usable=tuple(self.usable),
            by_region={r: tuple(v) for r, v in self.by_region.items()},
            changed_at=self.changed_at, hold_until=self.hold_until,
            policy_shares=dict(self.policy_shares), shares_note=self.shares_note,
            network=self.network)


class _Override(_Stored):
    kind: Literal["drain", "pin", "fault"]
    target: Text
    region: Text
    who: Text
    why: Text
    at: Time
    expires: Time | None = None

    def value(self) -> Override:
        return Override(self.kind, self.target, self.region, self.who, self.why, self.at,
                        self.expires)


class _Event(_Stored):
    at: Time
    kind: Text
    subject: Text
    message: Text
    detail: dict[str, Any] = {}

    def value(self) -> Event:
        return Event(self.at, self.kind, self.subject, self.message, self.detail)


# ------------------------------------------------------------------- health

def health_data(snapshot: HealthSnapshot) -> dict[str, Any]:
    return {"at": snapshot.at, "endpoints": {k: asdict(v) for k, v in
                                              snapshot.endpoints.items()}}


def health_from(data: Any, where: str, skip: Skip) -> HealthSnapshot | None:
    """The kept snapshot; endpoints of the wrong shape are skipped (named under `where`),
    and a snapshot that is not one at all is None."""
    if data is None or data is UNREADABLE:
        return None
    try:
        snapshot = _Snapshot.model_validate(data)
    except ValidationError as exc:
        skip(where, f"not a health snapshot, ignored: {why_not(exc)}")
        return None
    eps = {}
    for key, h in snapshot.endpoints.items():
        try:
            eps[key] = _Endpoint.model_validate(h).value()
        except ValidationError as exc:
            skip(f"{where} endpoint {key[:200]}", why_not(exc))
    return HealthSnapshot(at=snapshot.at, endpoints=eps)


def checks_data(states: Mapping[str, CheckState]) -> dict[str, Any]:
    return {k: asdict(v) for k, v in states.items()}


def checks_from(data: Any, where: str, skip: Skip) -> dict[str, CheckState]:
    """The kept state machines by `endpoint|check|vantage`; entries of the wrong shape
    are skipped (named under `where`)."""
    if data is None or data is UNREADABLE:
        return {}
    if not isinstance(data, dict):
        skip(where, "not a map of check states: ignored")
        return {}
    out = {}
    for key, v in data.items():
        if key.count("|") < 2:
            skip(f"{where} check {key[:200]}", "not endpoint|check|vantage")
            continue
        try:
            out[key] = _Check.model_validate(v).value()
        except ValidationError as exc:
            skip(f"{where} check {key[:200]}", why_not(exc))
    return out


# ---------------------------------------------------------------- decisions

_DECISION_FIELDS = tuple(f.name for f in fields(Decision))


def decisions_text(decisions: list[Decision]) -> str:
    # one decision at a time: one json.dumps of 10,000 holds the interpreter (and the
    # event loop that runs the probes) for a hundred milliseconds; and the fields read
    # as they are (dataclasses.asdict copies every tuple and dict deeply: 3x the cost)
    return "[" + ",".join(json.dumps({f: _plain(d.__dict__[f]) for f in _DECISION_FIELDS})
                          for d in decisions) + "]"


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value


def decisions_from(data: Any, where: str, skip: Skip) -> dict[DecisionKey, Decision]:
    """The kept decisions by (name, type) (and network); one of the wrong shape is skipped (named under
    `where`). Their regions and addresses are not checked here: see policies.stored."""
    if data is None or data is UNREADABLE:
        return {}
    if not isinstance(data, list):
        skip(where, "not a list of decisions: ignored")
        return {}
    out = {}
    for i, d in enumerate(data):
        try:
            decision = _Decision.model_validate(d).value()
        except ValidationError as exc:
            name = d.get("name") if isinstance(d, dict) else None
            label = f"{name[:200]}" if isinstance(name, str) else f"#{i}"
            skip(f"{where} decision {label}", why_not(exc))
            continue
        out[decision.key] = decision
    return out


# ---------------------------------------------------------- overrides, history

def override_data(o: Override) -> dict[str, Any]:
    return asdict(o)


def override_from(data: Any, where: str, skip: Skip) -> Override | None:
    """An override; None (named under `where`) when it is not one."""
    if data is UNREADABLE:
        return None
    try:
        return _Override.model_validate(data).value()
    except ValidationError as exc:
        skip(where, why_not(exc))
        return None


def event_data(e: Event) -> dict[str, Any]:
    return {"at": e.at, "kind": e.kind, "subject": e.subject, "message": e.message,
            "detail": dict(e.detail)}


def event_from(data: Any, where: str, skip: Skip) -> Event | None:
    """A history event; None (named under `where`) when it is not one."""
    if data is UNREADABLE or (isinstance(data, dict) and data.get("detail") is UNREADABLE):
        return None
    try:
        return _Event.model_validate(data).value()
    except ValidationError as exc:
        skip(where, why_not(exc))
        return None


class _Unreadable:
    """What `parsed` gives for text that is not JSON (already named): every decoder here
    takes it for nothing, without naming it again."""


UNREADABLE: Any = _Unreadable()


def parsed(raw: bytes | str, where: str, skip: Skip) -> Any:
    """JSON text as stored; UNREADABLE (named under `where`) when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        skip(where, f"not JSON: {str(exc)[:200]}")
        return UNREADABLE
