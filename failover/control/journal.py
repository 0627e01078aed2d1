"""The journal: what the controller keeps in its state store, and what it says.

It owns the events not yet written (the history), the saves of decisions and health
state machines with their retry queue and backoff, the overrides read from the store,
and what happens when the store fails (failover goes on from memory, said with backoff,
in the metric and in /readyz). It also watches the store for changes made by the CLI,
applies the history retention and reopens a state file replaced under it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError
from failover.overrides import expired
from failover.state.store import Event, Override

if TYPE_CHECKING:
    from failover.control.house import House

# the controller's logger: operators' log filters key on its name
log = logging.getLogger("failover.controller")

STATE_WATCH_INTERVAL = 0.05  # seconds between looks for overrides written by the CLI
SAVE_INTERVAL = 10.0  # seconds between saves of the health state machines that changed
STORE_CHECK_INTERVAL = 1.0  # seconds between looks for a state file replaced or writable
PRUNE_INTERVAL = 3600.0  # seconds between applications of the history retention
MAX_UNSAVED_EVENTS = 10_000  # history kept in memory while the state cannot be written


@dataclass
class Unsaved:
    """What a save could not write, to write again."""

    error: str
    decisions: bool
    events: list[Event]
    health: bool


class Journal:
    """Events, saves and their retry queue, overrides in force, a failing store."""

    def __init__(self, house: House) -> None:
        self.house = house
        self.saved_at = 0.0
        self.dirty = False  # a health change not yet saved
        # the next health save writes every check, not only those that changed: at start,
        # after a failed save, for a new board (a reload) or a state file reopened
        self.whole = True
        self.board_saved: object = None  # the board the last health save read
        self.decisions_dirty = False  # a decision not yet saved
        self.load_error: str | None = None  # what could not be loaded at start
        self.state_error: str | None = getattr(house.state, "open_error", None)
        self.save_retry_at, self.save_gap = 0.0, 0.0  # backoff while saves fail
        self.events_dropped = 0  # history lost to MAX_UNSAVED_EVENTS while saves failed
        self.overrides: list[Override] = []  # the last overrides read from state
        self.in_force: frozenset[tuple[str, str, float]] = frozenset()  # overrides applied

    def load(self, what: str, load: Callable[[], Any], empty: Any) -> Any:
        """What the state holds, or `empty` when it cannot be read at start (a fleet's
        etcd without quorum): the controller starts as new (endpoints healthy, Route
        53's rule), probes, serves /status, and says why (degraded until a save works)."""
        try:
            return load()
        except FailoverError as exc:
            self.load_error = (f"state store failing (load {what}): {exc}; started without "
                               "what it holds, waiting for it")
            log.error("event=state_load_failed what=%s error=%r", what, str(exc))
            return empty

    def distrusted(self, dropped: str) -> None:
        """A stored decision the config does not vouch for was dropped at start."""
        log.warning("event=stored_decision_distrusted %s", dropped)
        self.house.event("error", "state", f"stored decision not trusted, values dropped: "
                   f"{dropped} (the config changed since, or someone else wrote it)")

    # ------------------------------------------------------------------ the store

    async def watch_state(self, stop: asyncio.Event) -> None:
        """Wake the loop when another process writes the state (a drain, a restore, a
        drill from the CLI), so it is taken up within 50 ms, not at the next tick."""
        h = self.house
        checked, pruned = time.monotonic(), -PRUNE_INTERVAL
        while not stop.is_set():
            await asyncio.sleep(STATE_WATCH_INTERVAL)
            try:
                if h.state.changed_elsewhere():
                    h.wake()
            except FailoverError as exc:  # a busy or broken store: the ticks still read it
                self.state_failed("watch", str(exc))
            if time.monotonic() - checked >= STORE_CHECK_INTERVAL:
                checked = time.monotonic()
                await self.check_store()
                if time.monotonic() - pruned >= PRUNE_INTERVAL and h.is_writer():
                    pruned = time.monotonic()
                    await self.prune()

    async def prune(self) -> None:
        """History retention: by age and by count (controller.history)."""
        keep = self.house.cfg.controller.history
        try:
            dropped = await asyncio.to_thread(self.house.state.prune,
                                              time.time() - keep.keep_days * 86400,
                                              keep.keep_events)
        except FailoverError as exc:
            self.state_failed("prune", str(exc))
            return
        if dropped:
            log.info("event=history_pruned dropped=%d", dropped)

    async def check_store(self) -> None:
        """A state file deleted or replaced under the controller is reopened (the
        overrides it held are carried over, so a drain is not lost with the file); a
        state that could not be written is tried again, with backoff."""
        h = self.house
        state = h.state
        why = state.replaced()
        if why is None and not (state.read_only and h.clock() >= self.save_retry_at):
            return
        try:
            await asyncio.to_thread(state.reopen)
        except FailoverError as exc:
            self.state_failed("reopen", f"{why}; {exc}" if why else str(exc))
            return
        carried = []
        if why is not None:
            there = {(o.kind, o.target) for o in await asyncio.to_thread(state.overrides)}
            for o in self.overrides:
                if (o.kind, o.target) not in there:
                    await asyncio.to_thread(state.set_override, o)
                    carried.append(f"{o.kind} {o.target}")
            self.house.event("error", "state", f"{why}: reopened it; health, decisions and history "
                       "are kept there again" + (f"; carried over {', '.join(carried)}"
                                                 if carried else ""))
            log.error("event=state_replaced error=%r carried=%r", why, carried)
        self.decisions_dirty = self.dirty = self.whole = True
        self.saved_at = -1e9
        self.save_retry_at = 0.0
        h.wake()

    def read_overrides(self) -> list[Override]:
        """The overrides in state; the last ones read when the store cannot be read."""
        try:
            self.overrides = self.house.state.overrides()
        except FailoverError as exc:
            self.state_failed("read", str(exc))
        return self.overrides

    def state_failed(self, op: str, error: str) -> None:
        """The state store failed: failover goes on from memory; said with backoff, in
        the metric and in /readyz; saves are tried again after 1, 2, 4... 60 s."""
        h = self.house
        now = h.clock()
        h.metrics.state_errors.labels(op).inc()
        h.metrics.state_ok.set(0)
        first = self.state_error is None
        self.state_error = f"state store failing ({op}): {error}"
        if op in ("write", "reopen"):
            self.save_gap = min(max(1.0, self.save_gap * 2), 60.0)
            self.save_retry_at = now + self.save_gap
        said = h.repeats.say("state", f"{op}: {error}", now)
        if said is not None:
            log.error("event=state_error op=%s error=%r%s", op, said,
                      " (failover goes on; kept in memory until the state can be written)"
                      if first else "")
            self.house.event("error", "state", f"state store failing: {said}")

    def note_overrides(self, overrides_list: list[Override], now: float) -> bool:
        """Record when the set of overrides in force changes: when the controller took
        up a drain, a pin or a drill (the CLI records when it was asked for)."""
        active = [o for o in overrides_list if o.active(now)]
        in_force = frozenset((o.kind, o.target, o.at) for o in active)
        if in_force == self.in_force:
            return False
        was, self.in_force = self.in_force, in_force
        self.house.changed()
        if not self.house.is_writer():
            return True  # a follower takes it up; the leader says so in the history
        for e in expired(was, overrides_list, now):
            self.house.event(e.kind, e.subject, e.message, dict(e.detail))
        listed = ", ".join(f"{o.kind} {o.target}" for o in active) or "none"
        self.house.event("override", "controller", f"overrides in force: {listed}", {
            "in_force": [{"kind": o.kind, "target": o.target, "region": o.region, "at": o.at,
                          "who": o.who, "why": o.why} for o in active]})
        return True

    # ---------------------------------------------------------------------- saves

    def save(self, force: bool = False) -> None:
        """Keep what must survive a restart, now (on the calling thread)."""
        self.saved(self.saver(force)())

    async def save_async(self, health_only: bool = False) -> None:
        """Keep what is due, on a thread; nothing while backing off after failures."""
        if self.house.clock() < self.save_retry_at or self.house.state.read_only:
            return  # backing off; a read-only store is reopened first (check_store)
        self.saved(await asyncio.to_thread(self.saver(health_only=health_only)))

    def saved(self, failed: Unsaved | None) -> None:
        """Take up a save's outcome: recovered, or what to write again."""
        h = self.house
        if failed is None:
            if self.state_error is not None and not h.state.read_only:
                self.state_error = None
                self.save_gap = 0.0
                h.metrics.state_ok.set(1)
                failures = h.repeats.clear("state")
                self.house.event("controller", "state", f"state store writable again after "
                           f"{failures} failure(s)" + (f"; {self.events_dropped} history "
                           "events were dropped meanwhile" if self.events_dropped else ""))
                log.info("event=state_recovered failures=%d dropped_events=%d", failures,
                         self.events_dropped)
                self.events_dropped = 0
            return
        # keep what was not written, to write it when the store takes writes again
        self.decisions_dirty |= failed.decisions
        self.dirty |= failed.health
        self.whole |= failed.health  # the changes taken for it are written with the rest
        if failed.events:
            h.events[:0] = failed.events
            extra = len(h.events) - MAX_UNSAVED_EVENTS
            if extra > 0:
                del h.events[:extra]
                self.events_dropped += extra
        self.state_failed("write", failed.error)

    def saver(self, force: bool = False,
              health_only: bool = False) -> Callable[[], Unsaved | None]:
        """Take what is to be kept (decisions when one changed, events, and every
        SAVE_INTERVAL or when forced or changed the health state machines: those whose
        status or streak changed, the snapshot when a status flipped) and return
        the writes, to run on a thread: 10,000 decisions are megabytes of JSON. What is
        taken is taken here, on the loop, so nothing changes under the writer. The
        writes return what they could not keep (None: all kept)."""
        h = self.house
        state = h.state
        now = h.clock()
        decisions = None
        if (self.decisions_dirty or force) and not health_only and h.is_writer():
            decisions = list(h.decisions.values())
            self.decisions_dirty = False
        events: list[Event] = []
        if not health_only:
            events, h.events = h.events, []
        checks = health = None
        board = h.board
        whole = force or self.whole or board is not self.board_saved
        if force or health_only or self.dirty or now - self.saved_at >= SAVE_INTERVAL:
            # work with what changed, not with the number of checks: a save every 10 s
            # of 10,000 unchanged checks was a seventh of the controller's CPU
            if whole:
                checks = board.export()
                board.take_changed()
            else:
                # none changed: still a (small) write, so a store that stopped taking
                # writes (a full disk) is found within SAVE_INTERVAL, as before
                checks = board.take_changed()
            if whole or health_only or self.dirty:
                health = board.snapshot(now)
            self.saved_at = now
            self.dirty = self.whole = False
            self.board_saved = board

        def write() -> Unsaved | None:
            step = "decisions"
            try:
                if decisions is not None:
                    state.save_decisions(decisions)
                step = "events"
                # events after the decisions they announce: a reader that sees an event
                # finds the decisions of the same tick (failover drill relies on it)
                if events:
                    state.record(events)
                step = "health"
                if checks is not None:
                    (state.save_checks if whole else state.update_checks)(checks)
                if health is not None:
                    state.save_health(health)
            except FailoverError as exc:
                return Unsaved(str(exc), decisions is not None and step == "decisions",
                               events if step in ("decisions", "events") else [],
                               checks is not None or health is not None)
            return None

        return write
