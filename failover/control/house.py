"""The house: what the controller's roles share, and the only thing they all import.

The wiring (config, adapter, state store, clock, metrics, the health board, the ledger,
the probe targets) and the signals roles pass one another: that something /status shows
changed (`changed`), an event for the history (`event`), a wake-up for the loop (`wake`),
whether this instance writes (`is_writer`, the fleet's epoch in `leading`), the decisions
in force, and whether DNS answers this vantage. `Controller` is the house; each role is
handed it and the roles below it, so every arrow between roles runs one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from failover.metrics import Metrics
from failover.repeats import Repeats
from failover.state.store import Event

if TYPE_CHECKING:
    from failover.cluster.member import Member
    from failover.config import Config
    from failover.dns.base import Adapter
    from failover.health import HealthBoard
    from failover.notify import Notifier
    from failover.probes import ProbeTarget
    from failover.reconcile import Ledger, Planned
    from failover.state.store import StateStore
    from policies import Decision, DecisionKey


class Deposed(Exception):
    """A fleet member is no longer the leader (or its deadline passed): it writes nothing."""


@dataclass
class Tick:
    """What the last tick saw and did, for /status and tests."""

    at: float = 0.0
    planned: Planned | None = None  # the last write planned in this tick
    applied: int = 0
    error: str | None = None
    refused: list[str] = field(default_factory=list)
    decide_s: float = 0.0  # deciding every record, when something changed
    snapshot: Any = None  # the health this tick decided on, when it decided


class House:
    """The controller's wiring and the signals its roles share."""

    cfg: Config
    adapter: Adapter | None
    board: HealthBoard
    ledger: Ledger
    targets: list[ProbeTarget]
    latency_records: bool  # the config has latency records (latency moves re-decide)

    def __init__(self, *, state: StateStore, member: Member | None, dry_run: bool,
                 force: bool, clock: Callable[[], float], reconcile_interval: float) -> None:
        self.state, self.member = state, member
        self.dry_run = dry_run
        self.force = force  # apply plans that break the safety guards
        self.clock = clock
        self.reconcile_interval = reconcile_interval
        self.metrics = Metrics()
        self.repeats = Repeats()  # errors said once, then at growing intervals
        self.last = Tick()
        self.ready = False  # the first full probe round is done: it may write
        self.version = 0  # bumped by every change /status shows
        self.events: list[Event] = []  # history not yet saved (the journal saves it)
        self.leading: int | None = None  # the epoch it writes under (fleet leader)
        self.decisions: dict[DecisionKey, Decision] = {}  # in force, by (name, type)
        # whether this vantage reaches the DNS server (published in its view, so a leader
        # cut off from DNS hands over to one that reaches it)
        self.dns_reach: bool | None = None
        self._wake: asyncio.Event | None = None
        self.notifier: Notifier | None = None  # notify: sinks (the controller sets them)

    def wake(self) -> None:
        """Reconcile as soon as possible (health or overrides changed)."""
        if self._wake is not None:
            self._wake.set()

    def changed(self) -> None:
        """Something /status shows changed: the next /status is built afresh."""
        self.version += 1

    def event(self, kind: str, subject: str, message: str,
              detail: dict[str, Any] | None = None) -> None:
        """Record one history event (written with the next save)."""
        if self.member is not None:  # a fleet: whose history line this is
            detail = {**(detail or {}), "vantage": self.member.vantage}
        event = Event(self.clock(), kind, subject, message, detail or {})
        self.events.append(event)
        # told by the instance that writes (alone, or the fleet's leader); a dry run tells
        # nothing; the sinks send from threads of their own
        if self.notifier is not None and not self.dry_run and self.is_writer():
            self.notifier.offer(event)

    def is_writer(self) -> bool:
        """Whether this instance writes DNS: always alone, only the leader in a fleet."""
        return self.member is None or self.leading is not None

    def check_leading(self) -> None:
        """Raise Deposed unless this instance still leads, under the same epoch, before
        its local deadline (last renewal sent + TTL - margin)."""
        if self.member is not None and (self.leading is None
                                        or self.member.leading() != self.leading):
            raise Deposed


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused for a failover's decide or plan: the tens of
    thousands of decisions, record sets and changes they make are acyclic and freed by
    reference counting; collections walking them on the way cost as much as making
    them (measured: a 30,000-decision ledger update 240 ms with collections, 70 ms
    without)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
