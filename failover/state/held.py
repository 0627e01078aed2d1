"""Operators' changes the running controller holds in memory while its state cannot be
written (a full or read-only disk): in force at once, written when the state takes
writes again.

`HeldOverrides` wraps the controller's store (one process, SQLite): `hold()` keeps a
change the store refused; `overrides()` shows the store's overrides with the held
changes applied, so the controller serves them at its next tick and a restore finds
the drain it undoes; every write to the store first writes the held changes, in order,
so the controller's saves (tried again with backoff while they fail) carry them to
disk before anything else. A change still held when the controller stops is lost, and
said so in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from failover.errors import FailoverError
from failover.health import CheckState, HealthSnapshot
from failover.state.store import (
    Event,
    Override,
    OverrideChange,
    OverrideKind,
    StateStore,
    apply_changes,
)
from policies import Decision, DecisionKey

log = logging.getLogger(__name__)


def _short(change: OverrideChange) -> str:
    # "us-east-1 drained", without the records a forced drain leaves failing open
    return change.summary.partition(" (")[0]


class HeldOverrides:
    """A StateStore: `store` with the changes it could not take held in memory."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._held: list[OverrideChange] = []
        self._lock = threading.Lock()  # the list: the API's thread holds, the loop reads
        self._writing = threading.Lock()  # one writer of held changes at a time
        # what the controller reads of a SQLite store beside the interface
        self.open_error: str | None = getattr(store, "open_error", None)
        self.set_aside: str | None = getattr(store, "set_aside", None)

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    def held(self) -> list[str]:
        """The changes held, in short ("us-east-1 drained", "us-east-1 restored")."""
        with self._lock:
            return [_short(c) for c in self._held]

    def problem(self) -> str | None:
        """The changes held, for /readyz and /status; None when there are none."""
        held = self.held()
        if not held:
            return None
        return (f"state lacks {len(held)} operator change(s) in force from memory (lost if "
                f"the controller stops first): {'; '.join(held)}")

    def hold(self, change: OverrideChange) -> None:
        """Keep a change the store did not take: in force now, written later."""
        with self._lock:
            self._held.append(change)
        log.error("event=override_held change=%r: the state cannot be written; the "
                  "controller applies it from memory and writes it when it can", _short(change))

    def _write_held(self) -> None:
        """Write the held changes, oldest first; raises FailoverError at the first the
        store does not take."""
        # the list is not locked while the store is written (a busy store waits up to
        # 10 s): a reader meanwhile applies a change both written and held, which is the
        # same overrides (a set again is the same set; a clear finds nothing more)
        with self._writing:
            while True:
                with self._lock:
                    if not self._held:
                        return
                    change = self._held[0]
                if not self.store.change_override(change):
                    # cleared or replaced meanwhile: what was done is still history
                    self.store.record([change.event])
                with self._lock:
                    self._held.pop(0)  # still `change`: hold() only appends
                log.info("event=override_written change=%r: held in memory, now in the "
                         "state", _short(change))

    # the StateStore interface
    def overrides(self) -> list[Override]:
        found = self.store.overrides()
        with self._lock:
            return apply_changes(found, self._held) if self._held else found

    def change_override(self, change: OverrideChange) -> bool:
        self._write_held()
        return self.store.change_override(change)

    def set_override(self, override: Override) -> None:
        self._write_held()
        self.store.set_override(override)

    def clear_override(self, kind: OverrideKind, target: str) -> bool:
        self._write_held()
        return self.store.clear_override(kind, target)

    def save_health(self, snapshot: HealthSnapshot) -> None:
        self._write_held()
        self.store.save_health(snapshot)

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self._write_held()
        self.store.save_checks(states)

    def update_checks(self, states: Mapping[str, CheckState]) -> None:
        self._write_held()
        self.store.update_checks(states)

    def save_decisions(self, decisions: list[Decision]) -> None:
        self._write_held()
        self.store.save_decisions(decisions)

    def record(self, events: list[Event]) -> None:
        self._write_held()
        self.store.record(events)

    def load_health(self) -> HealthSnapshot | None:
        return self.store.load_health()

    def load_checks(self) -> dict[str, CheckState]:
        return self.store.load_checks()

    def load_decisions(self) -> dict[DecisionKey, Decision]:
        return self.store.load_decisions()

    def history(self, since: float | None = None, limit: int = 1000,
                kind: str | None = None) -> list[Event]:
        return self.store.history(since, limit, kind)

    def replaced(self) -> str | None:
        return self.store.replaced()

    def reopen(self) -> None:
        self.store.reopen()

    def changed_elsewhere(self) -> bool:
        return self.store.changed_elsewhere()

    def prune(self, older_than: float, keep: int) -> int:
        return self.store.prune(older_than, keep)

    def close(self) -> None:
        try:
            self._write_held()
        except FailoverError as exc:
            log.error("event=override_changes_lost error=%r: the controller stops with "
                      "changes it could never write to the state; do them again", str(exc))
        self.store.close()
