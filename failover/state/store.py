"""The state interface and the values it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from failover.health import CheckState, HealthSnapshot
from policies import Decision, DecisionKey, Overrides

OverrideKind = Literal["drain", "pin", "fault"]  # fault: a drill makes checks fail


@dataclass(frozen=True)
class Override:
    """An operator's forced state: a drained region, or a record name pinned to a region."""

    kind: OverrideKind
    target: str  # the region (drain) or the record name (pin), `@network` for one network
    region: str  # the region drained, or the one the name is pinned to
    who: str
    why: str
    at: float
    expires: float | None = None

    def active(self, now: float) -> bool:
        """Still in force at `now`."""
        return self.expires is None or now < self.expires


@dataclass(frozen=True)
class Event:
    """One line of history: what changed, when and why."""

    at: float
    kind: str  # health, decision, dns, override, error, config, controller
    subject: str
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OverrideChange:
    """One operator change, written whole or not at all: an override set (drain, pin) or
    cleared (restore, unpin), and the history line that says who did it and why."""

    summary: str  # what an operator is told: "us-east-1 drained"
    event: Event
    set: Override | None = None  # added, or replacing the one of its (kind, target)
    clear: Override | None = None  # removed, if it is still the one set at its `at`

    def __post_init__(self) -> None:
        assert (self.set is None) != (self.clear is None), "one of set and clear"


def apply_changes(overrides: list[Override], changes: list[OverrideChange]) -> list[Override]:
    """The overrides with `changes` applied in order (a clear only removes the override it
    names: the same kind, target and time set)."""
    by_key = {(o.kind, o.target): o for o in overrides}
    for c in changes:
        if c.set is not None:
            by_key[(c.set.kind, c.set.target)] = c.set
        elif c.clear is not None:
            key = (c.clear.kind, c.clear.target)
            there = by_key.get(key)
            if there is not None and there.at == c.clear.at:
                del by_key[key]
    return sorted(by_key.values(), key=lambda o: o.at)


def as_overrides(items: list[Override], now: float) -> Overrides:
    """The policy engine's view of the overrides active at `now`."""
    active = [o for o in items if o.active(now)]
    # a drain's target is its region, or `region@network` for one client network
    return Overrides(drained=frozenset(o.target for o in active if o.kind == "drain"),
                     pinned={o.target: o.region for o in active if o.kind == "pin"})


class StateStore(Protocol):
    """Where the controller and the CLI keep what must survive a restart."""

    @property
    def read_only(self) -> bool:
        """Opened for reading only (a read-only file or disk): writes fail."""
        ...

    def replaced(self) -> str | None:
        """Why what this store has open is no longer the store its config names (a file
        deleted or replaced under the controller); None when it still is."""
        ...

    def reopen(self) -> None:
        """Open the store again for reading and writing. Raises FailoverError."""
        ...

    def prune(self, older_than: float, keep: int) -> int:
        """Drop history events older than `older_than` (epoch seconds) and all but the
        newest `keep`; how many were dropped."""
        ...

    def overrides(self) -> list[Override]:
        """Every override, active or expired."""
        ...

    def changed_elsewhere(self) -> bool:
        """Whether another process (the CLI, a drill) has written since the last call.
        Cheap: the controller asks 20 times a second to take an override up at once."""
        ...

    def set_override(self, override: Override) -> None:
        """Add or replace the override of its (kind, target)."""
        ...

    def clear_override(self, kind: OverrideKind, target: str) -> bool:
        """Remove an override; False when there was none."""
        ...

    def change_override(self, change: OverrideChange) -> bool:
        """Write an operator's change and its history line in one transaction: both or
        neither. False (nothing written) when the override to clear is no longer there as
        it was. Raises FailoverError when the store does not take the write."""
        ...

    def save_health(self, snapshot: HealthSnapshot) -> None:
        """Keep the latest health snapshot."""
        ...

    def load_health(self) -> HealthSnapshot | None:
        """The latest health snapshot kept, if any."""
        ...

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        """Keep the health state machines (HealthBoard.export)."""
        ...

    def update_checks(self, states: Mapping[str, CheckState]) -> None:
        """Keep these health state machines, the others kept as they were (the ones that
        changed since the last save)."""
        ...

    def load_checks(self) -> dict[str, CheckState]:
        """The kept health state machines."""
        ...

    def save_decisions(self, decisions: list[Decision]) -> None:
        """Keep the latest decision of every record."""
        ...

    def load_decisions(self) -> dict[DecisionKey, Decision]:
        """The latest decision of every record, by (name, type)."""
        ...

    def record(self, events: list[Event]) -> None:
        """Append events to the history."""
        ...

    def history(self, since: float | None = None, limit: int = 1000,
                kind: str | None = None) -> list[Event]:
        """The newest `limit` events (of `kind`, when given) in time order, newest last."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...
