"""The controller: wires probes -> health -> policies -> plan -> DNS, level-triggered.

A tick (each `RECONCILE_INTERVAL`, and at once on a health or override change) decides
the records when something they depend on changed, and plans only the names whose answer
moved against what DNS holds (the ledger, read in full at start, after an error and on
the slow refresh). Failover first: the names whose decision changed are written before
anything else, in messages of their own; the bulk found by a full comparison (first
creates, markers, drift) goes out in chunks between which new decisions are written, so
a failover never waits behind a large write. With nothing changing, a tick does nothing
that grows with the zone. Planning runs off the event loop, which also runs the probes.

Nothing is written before the first full probe round after a start, and health state
machines are kept across restarts, so a restart causes no spurious change.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import heapq
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from failover.cluster.voters import Voters
from failover.dns.base import (
    DnsConflict,
    DnsError,
    DnsFenced,
    DnsUnavailable,
    WriterDeposed,
)
from failover.dns.claim import RENEW_EVERY
from failover.errors import FailoverError
from failover.health import HealthBoard, Transition
from failover.metrics import Metrics
from failover.overrides import expired
from failover.plan import to_json
from failover.probes import ProbeResult, ProbeTarget, targets_for
from failover.probes.scheduler import Scheduler
from failover.reconcile import Ledger, Planned, read_actual
from failover.repeats import Repeats
from failover.state.held import HeldOverrides
from failover.state.store import Event, Override, StateStore, as_overrides
from policies import decide_all
from policies.stored import vet

if TYPE_CHECKING:
    from failover.cluster.member import Member
    from failover.config import Config
    from failover.dns.base import Adapter
    from policies import Decision

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 1.0  # seconds between ticks when nothing wakes the loop earlier
STATE_WATCH_INTERVAL = 0.05  # seconds between looks for overrides written by the CLI
SAVE_INTERVAL = 10.0  # seconds between saves of the health state machines
CHUNK = 2000  # names of bulk work written per tick; failovers go between chunks
STATUS_REFRESH = 2.0  # seconds between rebuilds of /status when nothing changed
STORE_CHECK_INTERVAL = 1.0  # seconds between looks for a state file replaced or writable
PRUNE_INTERVAL = 3600.0  # seconds between applications of the history retention
MAX_UNSAVED_EVENTS = 10_000  # history kept in memory while the state cannot be written
DNS_RETRY_CAP = 5.0  # seconds: the longest wait between DNS attempts while it fails
CONFLICTS_STUCK = 3  # write conflicts in a row that are not a race: back off, degraded
LATENCY_STEP_MS, LATENCY_STEP_SHARE = 1.0, 0.05  # a latency move that re-decides


class _Waiting(Exception):
    """DNS failed recently: this tick waits (backoff) rather than trying again."""


class _Following(Exception):
    """A fleet follower's tick: decided, nothing to write."""


class _HeldElsewhere(Exception):
    """Alone, and another controller holds the zone's fence: it writes nothing."""


class _Deposed(Exception):
    """A fleet member is no longer the leader (or its deadline passed): it writes nothing."""


VIEW_REFRESH = 5.0  # seconds between republished views when only latencies moved


@dataclass
class _Unsaved:
    """What a save could not write, to write again."""

    error: str
    decisions: bool
    events: list[Event]
    health: bool


@dataclass
class Tick:
    """What the last tick saw and did, for /status and tests."""

    at: float = 0.0
    planned: Planned | None = None  # the last write planned in this tick
    applied: int = 0
    error: str | None = None
    refused: list[str] = field(default_factory=list)
    decide_s: float = 0.0  # deciding every record, when something changed


class Controller:
    """One controller for one config; `run()` until stopped, `reload()` a new config."""

    def __init__(self, cfg: Config, *, state: StateStore, adapter: Adapter | None,
                 dry_run: bool = False, force: bool = False,
                 clock: Callable[[], float] | None = None,
                 reconcile_interval: float = RECONCILE_INTERVAL,
                 member: Member | None = None, take_over: bool = False) -> None:
        self.state = state
        # alone (no fleet): the zone's fence, held under this controller's identity
        self._take_over_zone = take_over  # --take-over: take a fence another holds
        self._held_by: str | None = None  # why it may not write: another holds the zone
        self._claim_retry_at = 0.0
        self._renewed_at: float | None = None  # when its fence stamp was last renewed
        self._renewing = False
        self.member = member  # a fleet: this instance's lease, election and views
        self._leading: int | None = None  # the epoch it writes under (fleet leader)
        self._fence_due = False  # a new leader takes the DNS fence before writing
        self._epoch: int | None = None  # alone: the epoch its writes carry
        self._remote: dict[str, Any] = {}  # vantage -> (view revision, its leaf states)
        self._voters = Voters(member.prefix if member is not None else "")  # views that count
        self._expired: dict[str, float] = {}  # vantage -> when its view expired
        self._published_changes = -1  # board.local_changes when the view was published
        self._published_at = 0.0
        self._publishing: asyncio.Future[Any] | None = None
        self._publish_error: str | None = None
        self._generation = 0  # the member's lease generation the view was published under
        # results per target since this vantage (re)joined: it votes once each check has
        # seen failure_threshold of them, so a restarted or paused vantage never votes a
        # dead region healthy from what it saw before (None: it votes)
        self._fresh: dict[str, int] | None = {} if member is not None else None
        self._fresh_done = 0  # checks in `_fresh` that reached their failure_threshold
        self._seen_changes = 0  # board.local_changes when on_result last woke the loop
        self.dry_run = dry_run
        self.force = force  # apply plans that break the safety guards
        self.clock = clock or steady_clock()
        self.reconcile_interval = reconcile_interval
        self.metrics = Metrics()
        self.last = Tick()
        self._load_error: str | None = None  # what could not be loaded at start
        # only what the config vouches for: the store may hold anything (policies/stored.py)
        remembered = vet(cfg, self._load("decisions", state.load_decisions, {}), self.clock())
        self.decisions: dict[tuple[str, str], Decision] = remembered.decisions
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._scheduler: Scheduler | None = None
        self._scheduler_task: asyncio.Task[None] | None = None
        self._actual_at = 0.0
        self._urgent: set[str] = set()  # names whose decision changed, not yet written
        self._backlog: list[str] = []  # names found different by a full comparison
        self._lat_decided: dict[str, float] = {}  # endpoint -> latency at the last decide
        self._version = 0  # bumped by every change /status shows
        self._pending: list[float] = []  # times of health changes not yet served
        self._events: list[Event] = []
        self._saved_at = 0.0
        self._dirty = False  # a health change not yet saved
        self._decisions_dirty = False  # a decision not yet saved
        self._faulted: set[str] = set()  # regions whose checks a drill makes fail
        self._in_force: frozenset[tuple[str, str, float]] = frozenset()  # overrides applied
        self._noted: dict[str, Any] = {}  # category -> what was last recorded, not to repeat it
        self._holds: list[Decision] = []  # decisions holding an answer on purpose
        self._release_at: float | None = None  # the earliest end of a timed hold
        self._serial: int | None = None  # the zone's SOA serial at the last full read
        self._reading: asyncio.Future[Any] | None = None  # a full read in the background
        self._writes = 0  # writes sent, to tell a reading a write overtook
        self._drift: list[str] | None = None  # names a background reading found different
        self._records_json: tuple[int, str] | None = None  # /status's records, by version
        self._decisions_version = 0
        self.on_tick: Callable[[], None] | None = None  # called after every loop turn
        self.repeats = Repeats()  # errors said once, then at growing intervals
        self._state_error: str | None = getattr(state, "open_error", None) or self._load_error
        self._save_retry_at, self._save_gap = 0.0, 0.0  # backoff while saves fail
        self._events_dropped = 0  # history lost to MAX_UNSAVED_EVENTS while saves failed
        self._overrides: list[Override] = []  # the last overrides read from state
        self._blocked: dict[str, str] = {}  # managed names it may not write, and why
        self._refused: set[str] = set()  # names whose plan the safety guards refused
        self._refusal: list[str] = []  # the guards the last refused plan broke
        self._dns_error: str | None = None
        self._conflicts = 0  # DNS writes refused as conflicts in a row
        # a fleet: whether this vantage reaches the DNS server (published in its view, so
        # a leader cut off from DNS hands over to one that reaches it)
        self._dns_reach: bool | None = None
        self._reach_at = 0.0
        self._reaching: asyncio.Future[Any] | None = None
        self._published_reach: bool | None = None
        self._dns_retry_at, self._dns_gap = 0.0, 0.0  # backoff while DNS fails
        self._setup(cfg, adapter, self._load("health", state.load_checks, {}),
                    self._load("health", state.load_health, None))
        self._state_error = self._state_error or self._load_error
        for dropped in remembered.dropped:
            log.warning("event=stored_decision_distrusted %s", dropped)
            self.event("error", "state", f"stored decision not trusted, values dropped: "
                       f"{dropped} (the config changed since, or someone else wrote it)")

    def _load(self, what: str, load: Callable[[], Any], empty: Any) -> Any:
        """What the state holds, or `empty` when it cannot be read at start (a fleet's
        etcd without quorum): the controller starts as new (endpoints healthy, Route
        53's rule), probes, serves /status, and says why (degraded until a save works)."""
        try:
            return load()
        except FailoverError as exc:
            self._load_error = (f"state store failing (load {what}): {exc}; started without "
                                "what it holds, waiting for it")
            log.error("event=state_load_failed what=%s error=%r", what, str(exc))
            return empty

    def _setup(self, cfg: Config, adapter: Adapter | None, checks: Any, health: Any) -> None:
        self.cfg = cfg
        self.adapter = adapter
        self.board = HealthBoard(cfg, local_name=self.member.vantage if self.member else "local")
        self.board.restore(checks, health)
        if self.member is not None and self._remote:
            self.board.set_remote({v: states for v, (_, states) in self._remote.items()},
                                  self.clock())
            self._published_changes = -1
        self.targets = targets_for(cfg)
        self._seen: set[str] = set()
        self.ready = not self.targets
        self._prepared = False  # the adapter's prepare() ran for this config
        from failover.dns.claim import zone_adapters

        self._claim_due = (self.member is None and not self.dry_run and adapter is not None
                           and bool(zone_adapters(adapter)))
        self._renewed_at = None
        self.ledger = Ledger(cfg, ownership=adapter is not None,
                             native=native_for(adapter),
                             decorate=adapter.decorate if adapter is not None else None)
        self._decide = True  # decide every record at the next tick
        self._urgent, self._backlog, self._serial = set(), [], None
        self._reading = None
        self._refused, self._refusal = set(), []
        self.repeats.clear("refused")
        self._decisions_version += 1
        self._latency_records = any(r.policy == "latency" for r in cfg.records)
        self._version += 1

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event, once: bool = False) -> None:
        """Probe and reconcile until `stop` is set; with `once`, one round and one tick."""
        self._stop = stop
        self._wake = asyncio.Event()
        self.event("controller", "controller", "started" + (" (dry run)" if self.dry_run else ""))
        watcher: asyncio.Future[None] | None = None
        try:
            if once:
                from failover.probes.scheduler import probe_all

                for target, result in await probe_all(self.targets):
                    self.on_result(target, result)
                await self.tick()
                while self._backlog and self.last.error is None and not (
                        self._refused.issuperset(self._backlog)):
                    await self.tick()  # the rest of a large first write, chunk by chunk
                self._published()
                return
            self._start_probes()
            watcher = asyncio.ensure_future(self._watch_state(stop))
            if self.member is not None:
                loop = asyncio.get_running_loop()

                def changed() -> None:
                    loop.call_soon_threadsafe(self.wake)

                self.member.on_change = changed
            while not stop.is_set():
                waiters = [asyncio.ensure_future(self._wake.wait()),
                           asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=self.reconcile_interval,
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                self._wake.clear()
                if stop.is_set():
                    break
                if self.member is not None:
                    self._cluster_step()
                if self.ready:
                    await self.tick()
                self._published()
        finally:
            if watcher is not None:
                watcher.cancel()
            await self._stop_probes()
            self.event("controller", "controller", "stopped")
            self._save(force=True)

    async def _watch_state(self, stop: asyncio.Event) -> None:
        """Wake the loop when another process writes the state (a drain, a restore, a
        drill from the CLI), so it is taken up within 50 ms, not at the next tick."""
        checked, pruned = time.monotonic(), -PRUNE_INTERVAL
        while not stop.is_set():
            await asyncio.sleep(STATE_WATCH_INTERVAL)
            try:
                if self.state.changed_elsewhere():
                    self.wake()
            except FailoverError as exc:  # a busy or broken store: the ticks still read it
                self._state_failed("watch", str(exc))
            if time.monotonic() - checked >= STORE_CHECK_INTERVAL:
                checked = time.monotonic()
                await self._check_store()
                if time.monotonic() - pruned >= PRUNE_INTERVAL and self._writer():
                    pruned = time.monotonic()
                    await self._prune()

    async def _prune(self) -> None:
        """History retention: by age and by count (controller.history)."""
        keep = self.cfg.controller.history
        try:
            dropped = await asyncio.to_thread(self.state.prune,
                                              time.time() - keep.keep_days * 86400,
                                              keep.keep_events)
        except FailoverError as exc:
            self._state_failed("prune", str(exc))
            return
        if dropped:
            log.info("event=history_pruned dropped=%d", dropped)

    async def _check_store(self) -> None:
        """A state file deleted or replaced under the controller is reopened (the
        overrides it held are carried over, so a drain is not lost with the file); a
        state that could not be written is tried again, with backoff."""
        why = self.state.replaced()
        if why is None and not (self.state.read_only and self.clock() >= self._save_retry_at):
            return
        try:
            await asyncio.to_thread(self.state.reopen)
        except FailoverError as exc:
            self._state_failed("reopen", f"{why}; {exc}" if why else str(exc))
            return
        carried = []
        if why is not None:
            there = {(o.kind, o.target) for o in await asyncio.to_thread(self.state.overrides)}
            for o in self._overrides:
                if (o.kind, o.target) not in there:
                    await asyncio.to_thread(self.state.set_override, o)
                    carried.append(f"{o.kind} {o.target}")
            self.event("error", "state", f"{why}: reopened it; health, decisions and history "
                       "are kept there again" + (f"; carried over {', '.join(carried)}"
                                                 if carried else ""))
            log.error("event=state_replaced error=%r carried=%r", why, carried)
        self._decisions_dirty = self._dirty = True
        self._saved_at = -1e9
        self._save_retry_at = 0.0
        self.wake()

    def reload(self, cfg: Config, adapter: Adapter | None) -> None:
        """Switch to a new, already validated config; health state carries over."""
        checks = self.board.export()
        health = self.board.snapshot(self.clock())
        ready = self.ready
        restart = self._scheduler is not None
        if restart:
            # stop the old config's probes (these, not whichever scheduler runs when the
            # task gets to run: the new one is started below, before it does)
            old = (self._scheduler, self._scheduler_task)
            self._scheduler = self._scheduler_task = None
            asyncio.get_running_loop().create_task(_stop_scheduler(*old))
        self._setup(cfg, adapter, checks, health)
        # what the old config answered and the new one does not have is forgotten
        self.decisions = vet(cfg, self.decisions, self.clock()).decisions
        # a reload does not pause failover: a controller that was ready stays ready, and
        # an endpoint the new config adds starts healthy (Route 53's rule for a new check)
        # until its own probes say otherwise, within one interval
        self.ready = self.ready or ready
        self.event("config", "config", "reloaded")
        if restart:
            self._start_probes()
        self.wake()

    def _published(self) -> None:
        if self.on_tick is not None:
            self.on_tick()

    def wake(self) -> None:
        """Reconcile as soon as possible (health or overrides changed)."""
        if self._wake is not None:
            self._wake.set()

    def _start_probes(self) -> None:
        self._scheduler = Scheduler(self.targets, self.on_result)
        self._scheduler_task = asyncio.get_running_loop().create_task(
            self._scheduler.run(stop=asyncio.Event()))

    async def _stop_probes(self) -> None:
        sched, task = self._scheduler, self._scheduler_task
        self._scheduler = self._scheduler_task = None
        await _stop_scheduler(sched, task)

    # -------------------------------------------------------------------- health

    def on_result(self, target: ProbeTarget, result: ProbeResult) -> None:
        """Feed one probe result to health; a status change wakes the loop."""
        m = self.metrics
        if self._faulted and target.endpoint.split("/", 1)[0] in self._faulted:
            # the fault hook of `failover drill --mode fail-checks`: the probe ran, but its
            # result is a failure, so detection takes the real threshold x interval
            result = ProbeResult(False, "drill: checks made to fail", result.at)
        m.probes.labels(target.endpoint, target.check, "ok" if result.ok else "fail").inc()
        if result.latency_ms is not None:
            m.probe_latency.labels(target.endpoint, target.check).set(result.latency_ms / 1000)
        try:
            # health time is the controller's steady clock, not the wall clock the probe
            # read: a wall clock stepped back or forth must not stretch a failback delay
            flip = self.board.observe(target.endpoint, target.check, result.ok, result.reason,
                                      self.clock(), result.latency_ms)
        except KeyError:
            return  # a result for a config that was just reloaded away
        self._seen.add(target.key)
        if self._fresh is not None:
            n = self._fresh[target.key] = self._fresh.get(target.key, 0) + 1
            if n == self.cfg.checks[target.check].failure_threshold:
                self._fresh_done += 1  # one more check with enough fresh results
                if self._votes():
                    self.wake()
        if self.member is not None and self.board.local_changes != self._seen_changes:
            self._seen_changes = self.board.local_changes
            self.wake()  # a check flipped here: publish this vantage's view now
        if flip is not None:
            self._on_flip(flip)
        elif self._latency_records and result.latency_ms is not None:
            self._latency_moved(target.endpoint)
        if not self.ready and len(self._seen) >= len(self.targets):
            self.ready = True
            m.ready.set(1)
            self.event("controller", "controller", "first probe round complete: ready")
            self.wake()

    def _latency_moved(self, endpoint: str) -> None:
        """Re-decide when an endpoint's smoothed latency moved enough to matter for
        latency records (not on every probe: noise below the step is ignored)."""
        now = self.board.latency(endpoint)
        if now is None:
            return
        then = self._lat_decided.get(endpoint)
        if then is None or abs(now - then) > max(LATENCY_STEP_MS, LATENCY_STEP_SHARE * then):
            self._decide = True
            self.wake()

    def _on_flip(self, flip: Transition) -> None:
        state = "healthy" if flip.health.healthy else "unhealthy"
        if self._writer():  # in a fleet every instance sees the flip; the leader records it
            self.event("health", flip.endpoint,
                       f"{flip.endpoint} is {state}: {flip.health.reason}",
                       {"healthy": flip.health.healthy})
        log.info("event=health endpoint=%s healthy=%s reason=%r", flip.endpoint,
                 flip.health.healthy, flip.health.reason)
        self._pending.append(flip.health.since or self.clock())
        self._dirty = True
        self._decide = True
        self._version += 1
        self.wake()

    # ---------------------------------------------------------------------- tick

    async def tick(self) -> Tick:
        """One reconcile: decide what changed, write it first, then a chunk of the bulk."""
        started = time.perf_counter()
        now = self.clock()
        tick = Tick(at=now)
        if self._dirty:
            # health changed: keep it before writing DNS, so that a kill between the write
            # and the next save cannot make a restart undo the write
            await self._save_async(health_only=True)
        overrides_list = self._read_overrides()
        overrides = as_overrides(overrides_list, now)
        self._faulted = {o.region for o in overrides_list if o.kind == "fault" and o.active(now)}
        if self._note_overrides(overrides_list, now):
            self._decide = True
        snapshot = self.board.snapshot(now)
        try:
            if not self._writer():
                # a fleet follower decides (for its status, and to be ready to lead) but
                # reads and writes no DNS: the leader does
                if self._decide or self._holding():
                    snapshot = await self._decide_now(tick, overrides, full=False)
                self._urgent.clear()
                self._backlog = []
                self._pending.clear()
                raise _Following
            if self._claim_due and now >= self._claim_retry_at:
                await self._claim_zone(now)
            elif self._renewed_at is not None and now - self._renewed_at >= RENEW_EVERY:
                self._renew_fence(now)
            if self._held_by is not None:
                if self._decide or self._holding():
                    snapshot = await self._decide_now(tick, overrides, full=False)
                raise _HeldElsewhere
            if now < self._dns_retry_at:
                # DNS failed a moment ago: decide on (status shows what will be written
                # when DNS answers), write nothing until the backoff ends
                if self._decide or self._holding():
                    snapshot = await self._decide_now(tick, overrides, full=False)
                raise _Waiting
            if self.adapter is not None and not self.dry_run and not self._prepared:
                await asyncio.to_thread(self.adapter.prepare)
                self._prepared = True
            if self._fence_due and self.adapter is not None and not self.dry_run:
                self._check_leading()
                took = await asyncio.to_thread(take_over, self.adapter)
                self._fence_due = False
                if self._renewing:
                    self._renewing = False
                    self._serial = await asyncio.to_thread(_serial_after, self.adapter,
                                                           self._serial, 1 if took else 0)
                else:
                    epoch = self._leading if self.member is not None else self._epoch
                    self.event("dns", "fence", f"took the DNS fence: writes now carry epoch "
                               f"{epoch}" + ("" if took else " (it held it already)"),
                               {"epoch": epoch})
            full = await self._refresh(now)
            # a reading taken in the background changes no decision: only one taken at
            # start or after an error (the ledger was empty) decides everything again
            if (full and self._drift is None) or self._decide or self._holding():
                snapshot = await self._decide_now(tick, overrides, full)
            if full:
                drift = self._drift
                if drift is None:
                    drift = await asyncio.to_thread(self.ledger.drifted)
                self._drift = None
                self._backlog = [n for n in drift if n not in self._urgent]
                self._unblock(set(drift))
            if self._urgent:
                await self._write(sorted(self._urgent), tick, urgent=True)
            if self._backlog and tick.error is None:
                chunk, self._backlog = self._backlog[:CHUNK], self._backlog[CHUNK:]
                await self._write(chunk, tick, urgent=False)
                if self._refused.intersection(chunk):
                    # planned again at the next tick, as refused urgent names are
                    self._backlog += [n for n in chunk if n in self._refused]
                elif self._backlog:
                    self.wake()  # the next chunk, after whatever changed meanwhile
        except _Following:
            pass
        except _HeldElsewhere:
            tick.error = self._held_by
        except (_Deposed, WriterDeposed):
            tick.error = "no longer the fleet's leader: wrote nothing"
            self.ledger.actual = None
            self.wake()
        except DnsFenced as exc:
            tick.error = str(exc)
            self.ledger.actual = None
            if self.member is not None:
                self.event("error", "fence", str(exc), {"epoch": exc.epoch})
                log.error("event=fenced epoch=%s newer=%d error=%r", self._leading, exc.epoch,
                          str(exc))
                await asyncio.to_thread(self.member.resign, str(exc))
                self._cluster_step()
            else:  # another controller took the zone over: this one stops writing
                self._held("another controller took the zone over and writes it now: "
                           f"{exc}", now)
        except _Waiting:
            tick.error = self._dns_error  # backing off after DNS errors
        except DnsError as exc:
            tick.error = str(exc)
            self.ledger.actual = None  # read again next tick
            self._backlog = []
            kind = "conflict" if isinstance(exc, DnsConflict) else type(exc).__name__
            self.metrics.dns_errors.labels(kind).inc()
            if isinstance(exc, DnsConflict):
                # a race with another writer: re-plan at once against a fresh read; the
                # same conflict again and again is not a race: back off, and say so
                self._conflicts += 1
                said = self.repeats.say("conflict", str(exc), now)
                stuck = self._conflicts >= CONFLICTS_STUCK
                if said is not None:
                    self.event("error", "dns", said, {"kind": kind})
                    log.log(logging.ERROR if stuck else logging.WARNING,
                            "event=dns_error kind=%s conflicts=%d error=%r", kind,
                            self._conflicts, said)
                if stuck:
                    self._dns_error = str(exc)
                    self._dns_gap = min(max(self.reconcile_interval, self._dns_gap * 2),
                                        DNS_RETRY_CAP)
                    self._dns_retry_at = now + self._dns_gap
                else:
                    self.wake()
            else:
                if isinstance(exc, DnsUnavailable):
                    self._dns_reach = False
                # said once, then at growing intervals; tried again after 1, 2, 4, 5, 5... s
                self._dns_error = str(exc)
                self._dns_gap = min(max(self.reconcile_interval, self._dns_gap * 2),
                                    DNS_RETRY_CAP)
                self._dns_retry_at = now + self._dns_gap
                said = self.repeats.say("dns", str(exc), now)
                if said is not None:
                    self.event("error", "dns", said, {"kind": kind})
                    log.error("event=dns_error kind=%s error=%r", kind, said)
        else:
            if self._writer() and self.adapter is not None and tick.applied:
                self._dns_reach = True
            failures = self.repeats.clear("dns")
            if self._conflicts and (tick.applied or not self._urgent):
                # a write went through, or nothing is left to write: resolved
                failures += self.repeats.clear("conflict")
                self._conflicts = 0
            self._dns_error, self._dns_gap = None, 0.0
            if failures:
                self.event("dns", "dns", f"DNS works again after {failures} failed attempts")
                log.info("event=dns_recovered failures=%d", failures)
        if tick.error != self.last.error:
            self._version += 1
        self._update_gauges(snapshot, overrides_list, now)
        self.last = tick
        await self._save_async()
        self.metrics.reconcile.observe(time.perf_counter() - started)
        return tick

    async def _decide_now(self, tick: Tick, overrides: Any, full: bool) -> Any:
        """Decide every record on health as it is now; the names whose answer moved are
        urgent. Returns the snapshot decided on."""
        # health as it is now, taken with the flag cleared and no wait between: a flip
        # during a read (DNS slow or down) is in this snapshot, and one during the decide
        # below sets the flag for the next tick
        self._decide = False
        now = self.clock()
        snapshot = self.board.snapshot(now)
        self._lat_decided = {eid: h.latency_ms for eid, h in snapshot.endpoints.items()
                             if h.latency_ms is not None}
        previous = self.decisions
        t0 = time.perf_counter()
        decisions, moved = await asyncio.to_thread(self._decide_all, snapshot, overrides, now)
        tick.decide_s = time.perf_counter() - t0
        # the decisions, the ledger and the config are long-lived: keep the cyclic
        # collector from walking them (a full pass over 10,000 records holds the
        # interpreter, and so the probes, for over 100 ms); they are acyclic and freed by
        # reference counting when replaced
        gc.freeze()
        # urgent: an answer that moved (a failover, a drain, a pin); a name decided for
        # the first time is bulk work, like markers and TTL edits
        urgent = {d.name for d in decisions if d.name in moved and (
            (p := previous.get(d.key)) is not None and p.values != d.values)}
        self._urgent |= urgent
        if not full:
            self._backlog += sorted(moved - urgent - set(self._backlog))
        if not urgent:
            self._pending.clear()  # nothing to serve for those health changes
        return snapshot

    def _decide_all(self, snapshot: Any, overrides: Any,
                    now: float) -> tuple[list[Decision], set[str]]:
        """Every record's decision, and the names whose desired records moved (a thread:
        10,000 records cost tens of milliseconds the probes must not wait for)."""
        decisions = decide_all(self.cfg, snapshot, overrides, self.decisions, now)
        moved = self.ledger.set_decisions(decisions)
        self._note_decisions(decisions)  # the loop only appends events and reads decisions
        return decisions, moved

    def _holding(self) -> bool:
        """Whether a failback delay is running (its end is a change no probe announces)."""
        if self._release_at is not None and self.clock() >= self._release_at:
            return True  # a latency answer's minimum hold ended
        return any(d.basis == "hold" and d.policy == "failover" for d in self._holds)

    async def _refresh(self, now: float) -> bool:
        """Bring the ledger's reading of DNS up to date; True when it took a new one.

        With no reading (start, after an error) it reads at once. Otherwise every
        `controller.refresh` seconds it starts a read in the background and takes its result up at a
        later tick, so a failover never waits behind a full read of a large zone; a
        reading that a write overtook is dropped, and a zone whose SOA serial has not
        moved since the last reading is not read at all.
        """
        if self.adapter is None:
            if self.ledger.actual is None:
                self.ledger.set_actual([])
                return True
            return False
        if self.ledger.actual is None:
            self._reading = None
            self._serial = await asyncio.to_thread(_serial_of, self.adapter)
            records = await asyncio.to_thread(read_actual, self.cfg, self.adapter)
            self.ledger.set_actual(records)
            self._actual_at = now
            return True
        reading = self._reading
        if reading is not None:
            if not reading.done():
                return False
            self._reading = None
            result = reading.result()  # a DnsError is the tick's, as any other read's
            if result is None or result[2] != self._writes:
                return False  # nothing moved, or a write overtook the reading
            probe, self._serial, _, drift = result
            self.ledger.actual, self.ledger.existing = probe.actual, probe.existing
            self._drift = drift
            return True
        if now - self._actual_at <= self.cfg.controller.refresh:
            return False
        self._actual_at = now
        self._reading = asyncio.ensure_future(asyncio.to_thread(
            self._read_in_background, self._serial, self._writes, dict(self.ledger.desired)))
        self._reading.add_done_callback(lambda _: self.wake())
        return False

    def _read_in_background(self, serial: int | None, writes: int,
                            desired: dict[Any, Any]) -> tuple[Ledger, int | None, int,
                                                              list[str]] | None:
        """A full reading of DNS compared with what is desired (None when the SOA serial
        says nothing moved), on a copy of the ledger: the tick goes on meanwhile."""
        assert self.adapter is not None
        now = _serial_of(self.adapter)
        if serial is not None and now == serial:
            return None
        probe = copy.copy(self.ledger)
        probe.desired = desired
        probe.set_actual(read_actual(self.cfg, self.adapter))
        return probe, now, writes, probe.drifted()

    async def _write(self, names: list[str], tick: Tick, *, urgent: bool) -> None:
        if self.adapter is None:  # provider none: decide and show, write nothing
            self._urgent.clear()
            self._pending.clear()
            return
        t0 = time.perf_counter()
        planned = await asyncio.to_thread(self.ledger.plan, names) if len(names) > 100 \
            else self.ledger.plan(names)
        plan_s = time.perf_counter() - t0
        tick.planned = planned
        was = {n: self._blocked[n] for n in names if n in self._blocked}
        for name in was:
            del self._blocked[name]
        self._blocked.update(planned.blocked)
        if was != planned.blocked:
            self._version += 1  # /status lists them
        self._note_blocked(planned.blocked)
        if urgent:
            self._urgent -= set(planned.blocked)
        changes = planned.changes
        if not changes:
            if urgent:
                self._urgent.clear()
                self._pending.clear()
            self._accepted(names)
            return
        if planned.violations and not self.force:
            tick.refused = planned.violations
            self._refusing(names, planned.violations, changes)
            return
        if self.dry_run:
            if self._new("dry-run", changes.changes):
                self.event("dns", "dry-run", f"would apply {changes.summary()}", to_json(changes))
                log.info("event=dry_run changes=%r", changes.summary())
            if urgent:
                self._urgent.clear()
            return
        assert self.adapter is not None
        before = self.ledger.actual_of(names)
        self._check_leading()  # the fleet's deadline, checked as late as can be
        self._writes += 1  # a reading taken before this write is stale once it lands
        report = await asyncio.to_thread(self.adapter.apply, changes, before)
        done = self.clock()
        written = changes.only(c for c in changes.changes
                               if changes.owner(c.record.name) not in report.rejected)
        self.ledger.applied(written)
        self._accepted(names)
        self._serial = await asyncio.to_thread(_serial_after, self.adapter, self._serial,
                                               report.messages)
        if urgent:
            self._urgent -= set(names)
        tick.applied += len(written.changes)
        self.metrics.dns_write.observe(report.applied_s)
        for c in written.changes:
            self.metrics.dns_changes.labels(c.action).inc()
        if urgent:
            for at in self._pending:
                self.metrics.health_to_served.observe(max(0.0, done - at))
            self._pending.clear()
        self._blocked.update(report.rejected)
        if report.rejected and self._new("rejected", report.rejected):
            for name, why in report.rejected.items():
                self.event("error", name, f"{name} not written: {why}")
                log.error("event=record_rejected name=%s reason=%r", name, why)
        detail = to_json(written) if len(written.changes) <= 200 else {
            "summary": {a: written.count(a) for a in ("create", "upsert", "delete")},
            "names": len(names)}
        self.event("dns", "dns", f"applied {written.summary()}"
                   + ("" if urgent else " (bulk)"), {
                       **detail, "decide_ms": round(tick.decide_s * 1000, 2) if urgent else None,
                       "plan_ms": round(plan_s * 1000, 2),
                       "applied_ms": round(report.applied_s * 1000, 2),
                       "confirmed_ms": round(report.confirmed_s * 1000, 2),
                       "messages": report.messages, "notes": report.notes})
        if pruned := [n for n in planned.pruned if n not in report.rejected]:
            self.event("dns", "prune", f"pruned {len(pruned)} name(s) no longer in the config "
                       f"(deleted with their markers): {', '.join(pruned[:20])}"
                       + (f" and {len(pruned) - 20} more" if len(pruned) > 20 else ""),
                       {"names": pruned[:200], "count": len(pruned)})
            log.info("event=names_pruned count=%d names=%r", len(pruned), pruned[:20])

    # --------------------------------------------------------------------- fleet

    async def _claim_zone(self, now: float) -> None:
        """Alone: take each zone's fence, or learn that another controller holds it."""
        from failover.dns.claim import ZoneHeld, claim, identity

        assert self.adapter is not None
        me = identity(self.cfg.path(self.cfg.controller.state))
        try:
            got = await asyncio.to_thread(claim, self.adapter, me, self.cfg.ownership.owner_id,
                                          take_over=self._take_over_zone, now=time.time())
        except ZoneHeld as exc:
            self._held(str(exc), now)
            return
        for note in got.notes:
            self.event("dns", "fence", note)
            log.warning("event=zone_taken %s", note)
        fence(self.adapter, got.epoch, me, self.cfg.ownership.owner_id, renewed=got.renewed)
        self._epoch = got.epoch
        self._claim_due = False
        self._fence_due = True
        self._renewed_at = now - max(0.0, time.time() - got.renewed)
        if self._held_by is not None:
            self._held_by = None
            self._version += 1
            self.repeats.clear("held")

    def _renew_fence(self, now: float) -> None:
        """Alone: a fresh stamp in the fence (every RENEW_EVERY), so a controller that
        finds it knows this one still runs; written with the next tick's fence step."""
        from failover.dns.claim import identity

        assert self.adapter is not None
        fence(self.adapter, self._epoch, identity(self.cfg.path(self.cfg.controller.state)),
              self.cfg.ownership.owner_id, renewed=int(time.time()))
        self._renewed_at = now
        self._fence_due = self._renewing = True

    def _held(self, why: str, now: float) -> None:
        """Another controller holds the zone: write nothing, say so (degraded, ERROR,
        history), and look again every RENEW_EVERY (its fence may go stale)."""
        if self._held_by != why:
            self._version += 1
        self._held_by = why
        self._claim_due = True
        self._claim_retry_at = now + RENEW_EVERY
        self._renewed_at = None
        said = self.repeats.say("held", why, now)
        if said is not None:
            self.event("error", "fence", f"not writing DNS: {said}")
            log.error("event=zone_held error=%r", said)

    def _writer(self) -> bool:
        """Whether this instance writes DNS: always alone, only the leader in a fleet."""
        return self.member is None or self._leading is not None

    def _check_leading(self) -> None:
        """Raise _Deposed unless this instance still leads, under the same epoch, before
        its local deadline (last renewal sent + TTL - margin)."""
        if self.member is not None and (self._leading is None
                                        or self.member.leading() != self._leading):
            raise _Deposed

    def _cluster_step(self) -> None:
        """Take up what the fleet did: other vantages' views (joined, changed, expired),
        this instance's leadership, and publish this vantage's view when it changed."""
        member = self.member
        assert member is not None
        now = self.clock()
        cluster = self.cfg.controller.cluster
        live = member.views()
        # only the views of the config's vantages that parse whole count (cluster/voters.py)
        for note in self._voters.sort(live, cluster.vantages if cluster else None):
            log.log(note.level, "event=vantage_%s vantage=%r %s", "refused" if note.refused
                    else "readmitted", note.vantage, note.message)
            if self._writer():
                self.event("error" if note.refused else "controller", "fleet", note.message)
            self._version += 1
        changed = False
        for vantage, (revision, view) in self._voters.counted.items():
            if not view.ready or vantage == member.vantage:
                continue  # still on its first probe round: it does not vote yet
            held = self._remote.get(vantage)
            if held is None or held[0] != revision:
                if held is None and self._writer():
                    self.event("controller", "fleet", f"vantage {vantage} reports "
                               f"(host {view.host}, PID {view.pid})")
                    self._expired.pop(vantage, None)
                self._remote[vantage] = (revision, view.checks)
                changed = True
        for vantage in [v for v in self._remote if v not in self._voters.counted]:
            del self._remote[vantage]
            if vantage in live:  # left out of the vote (said above), not expired
                changed = True
                continue
            self._expired[vantage] = time.time()
            if self._writer():
                self.event("error", "fleet", f"vantage {vantage}'s view expired (its lease "
                           "ended: the instance stopped or cannot reach etcd); it no longer "
                           "votes")
            log.warning("event=vantage_expired vantage=%s", vantage)
            changed = True
        if changed:
            flips = self.board.set_remote({v: st for v, (_, st) in self._remote.items()}, now)
            for flip in flips:
                self._on_flip(flip)
            self._version += 1
        self._take_leadership(member.leading())
        self._check_reach(member, now)
        if member.generation != self._generation:
            self._generation = member.generation
            self._published_at = 0.0
            if self._fresh is None:  # a new lease after losing one: old views are stale
                self._fresh, self._fresh_done = {}, 0
                self.event("controller", "fleet", f"{member.vantage} rejoined the fleet: it "
                           "votes again once each check has seen failure_threshold results")
        if self.ready and self._publishing is None and self._votes() and (
                self.board.local_changes != self._published_changes or (
                    self._latency_records and now - self._published_at >= VIEW_REFRESH)
                or not self._published_at or self._dns_reach != self._published_reach):
            self._publish_view(member, now)

    def _check_reach(self, member: Member, now: float) -> None:
        """A follower asks the DNS server for its SOA every half lease (it writes
        nothing, so nothing else tells it); a leader that has failed to reach DNS for
        longer than a lease steps down when another live vantage reaches it, never into
        a fleet where nobody does."""
        if self.adapter is None or self.dry_run:
            return
        if not self._writer():
            if self._reaching is None and now - self._reach_at >= max(1.0, member.ttl / 2):
                self._reach_at = now
                self._reaching = asyncio.ensure_future(asyncio.to_thread(reachable,
                                                                         self.adapter))

                def done(fut: asyncio.Future[Any]) -> None:
                    self._reaching = None
                    if not fut.cancelled() and fut.exception() is None and (
                            fut.result() != self._dns_reach):
                        self._dns_reach = fut.result()
                        self.wake()  # publish it

                self._reaching.add_done_callback(done)
            return
        since = self.repeats.since("dns")
        if since is None or self._dns_reach is not False or now - since <= member.ttl:
            return
        # the fleet's own vantages only (the allow-list): a key anyone wrote cannot
        # make the leader step down
        able = [v for v, (_, view) in self._voters.counted.items()
                if v != member.vantage and view.dns is True]
        if not able:
            return  # nobody else reaches DNS either: stepping down would not help
        why = (f"{member.vantage} cannot reach DNS for {now - since:.0f} s "
               f"({self._dns_error}) while {', '.join(sorted(able))} can: it steps down "
               "so that one of them writes")
        self.event("error", "fleet", why)
        log.error("event=leader_cut_from_dns vantage=%s able=%r error=%r", member.vantage,
                  able, self._dns_error)
        member.resign(why, hold=2 * member.ttl)
        self._take_leadership(member.leading())

    def _votes(self) -> bool:
        """Whether this vantage's view is fresh enough to count (see `_fresh`)."""
        if self._fresh is None:
            return True
        if self._fresh_done >= len(self.targets):
            self._fresh = None
            return True
        return False

    def _publish_view(self, member: Member, now: float) -> None:
        from failover.cluster import views as codec

        self._published_changes = self.board.local_changes
        self._published_at = now
        self._published_reach = self._dns_reach
        view = {"ready": True, "at": time.time(), "dns": self._dns_reach,
                "checks": codec.encode(self.board.local_states())}

        def done(fut: asyncio.Future[Any]) -> None:
            self._publishing = None
            error = fut.exception()
            if error is not None:
                self._published_changes = -1  # again at the next turn
                self._publish_error = str(error)
            else:
                self._publish_error = None

        self._publishing = asyncio.ensure_future(asyncio.to_thread(member.publish, view))
        self._publishing.add_done_callback(done)

    def _take_leadership(self, epoch: int | None) -> None:
        if epoch == self._leading:
            return
        assert self.member is not None
        vantage = self.member.vantage
        if epoch is not None:
            self.event("controller", "fleet", f"{vantage} leads (epoch {epoch}): it writes DNS")
            log.info("event=leading vantage=%s epoch=%d", vantage, epoch)
            if self.adapter is not None:
                member = self.member
                fence(self.adapter, epoch, vantage, self.cfg.ownership.owner_id,
                      lambda: member.leading() == epoch)
            self._fence_due = True
            self.ledger.actual = None  # what the previous leader wrote: read it afresh
            self._in_force = frozenset()  # say which overrides are in force, as leader
            self._decisions_dirty = True
            self.wake()
        else:
            self.event("controller", "fleet", f"{vantage} no longer leads (epoch "
                       f"{self._leading}): it writes nothing")
            log.warning("event=following vantage=%s epoch=%s", vantage, self._leading)
        self._leading = epoch
        self._version += 1

    def cluster_maker(self) -> Callable[[], dict[str, Any]] | None:
        """The fleet as this instance sees it, for /status (its role, the leader, every
        vantage's view, live or expired, and the odd one out), by a function to run on a
        thread: its inputs are taken now, on the loop; decoding the views and comparing
        them (endpoints x vantages) happens there. None outside a fleet."""
        member = self.member
        if member is None:
            return None
        from failover.cluster import views as codec

        snapshot = self.board.snapshot(self.clock())
        all_views = {member.vantage: self.board.local_states(),
                     **{v: st for v, (_, st) in self._remote.items()}}
        live, expired, leader = dict(self._voters.counted), dict(self._expired), member.leader()
        unknown, malformed = dict(self._voters.unknown), dict(self._voters.malformed)
        # what the write path checks: past its deadline a leader writes nothing
        epoch = self._leading if member.leading() == self._leading else None
        head = {"vantage": member.vantage, "role": "leader" if epoch is not None else "follower",
                "epoch": epoch, "leader": None if leader is None else {
                    k: leader.get(k) for k in ("vantage", "host", "pid", "epoch", "started")},
                "lease_ttl": member.ttl,
                "deadline_in": (round(member.deadline - time.monotonic(), 2)
                                if epoch is not None else None),
                "lease_renewed_at": member.lease_renewed, "etcd_error": member.problem()}

        def make() -> dict[str, Any]:
            result = {eid: h.healthy for eid, h in snapshot.endpoints.items()}
            odd = codec.odd_ones(all_views, result)
            vantages = []
            for vantage, (_, view) in sorted(live.items()):
                states = all_views.get(vantage, {})
                down = sorted({e for (e, _), st in states.items() if not st.healthy})
                vantages.append({
                    "vantage": vantage, "live": True, "ready": view.ready,
                    "host": view.host, "pid": view.pid,
                    "reported_at": view.at, "sees_down": down,
                    "disagrees": odd.get(vantage, []),
                    "odd": bool(odd.get(vantage)) and all(
                        not st.healthy for st in states.values()) and any(result.values())})
            for vantage, at in sorted(expired.items()):
                vantages.append({"vantage": vantage, "live": False, "expired_at": at,
                                 "note": "its view expired with its lease: not counted"})
            return {**head, "vantages": vantages, "odd_ones": sorted(odd),
                    # views left out of the vote (cluster/voters.py)
                    "unknown_vantages": [{"vantage": v, "published_by": who, "note": "not in "
                                          "controller.cluster.vantages: not counted"}
                                         for v, who in sorted(unknown.items())],
                    "unreadable_views": [{"vantage": v, "why": why, "note": "not counted"}
                                         for v, why in sorted(malformed.items())]}

        return make

    def _refusing(self, names: list[str], violations: list[str], changes: Any) -> None:
        """A plan the safety guards refused: nothing of it is written, and until a plan
        for those names passes, /readyz is degraded and the log and history say so (once,
        then at growing intervals). The names stay pending: each tick plans them again."""
        first = not self._refused
        self._refused.update(names)
        if violations != self._refusal:
            self._refusal = violations
            self._version += 1
        said = self.repeats.say("refused", "; ".join(violations), self.clock())
        if said is None:
            return
        hint = "nothing written for these names; `failover run --force` applies it"
        log.error("event=plan_refused names=%d violations=%r: %s", len(self._refused), said,
                  hint)
        self.event("error", "plan", f"plan refused by safety guards: {said} ({hint})",
                   to_json(changes) if first and len(changes.changes) <= 200 else {
                       "names": len(self._refused)})

    def _accepted(self, names: list[str]) -> None:
        """Names planned within the guards (written, or nothing to write): a refusal that
        held them is over once no refused name is left."""
        if not self._refused:
            return
        self._refused.difference_update(names)
        if self._refused:
            return
        self._refusal = []
        self._version += 1
        failures = self.repeats.clear("refused")
        self.event("dns", "plan", f"plans pass the safety guards again (after {failures} "
                   "refused)")
        log.info("event=plan_accepted refused=%d", failures)

    def _unblock(self, drift: set[str]) -> None:
        """After a full reading: names left alone before that now hold what is desired
        and may be written (a marker restored by hand) are no longer reported."""
        cleared = [n for n in self._blocked if n not in drift]
        if not cleared:
            return
        for name in cleared:
            del self._blocked[name]
        self._noted.pop("blocked", None)  # a name blocked again is said again
        self._version += 1
        shown = ", ".join(sorted(cleared)[:3]) + (f" and {len(cleared) - 3} more"
                                                   if len(cleared) > 3 else "")
        self.event("dns", "dns", f"{shown}: written by this controller again (found as "
                   "desired, marker in place)")
        log.info("event=names_writable count=%d names=%r", len(cleared), shown)

    def _note_blocked(self, blocked: dict[str, str]) -> None:
        if blocked and self._new("blocked", blocked):
            for name, why in blocked.items():
                self.event("error", name, f"{name} left alone: {why}")
                log.error("event=name_not_written name=%s reason=%r", name, why)

    def problems(self) -> list[str]:
        """Why the controller is degraded (for /readyz, /status and the metric): DNS
        failing for longer than a tick or two, the state store failing, managed names it
        may not write. Empty when all is well."""
        out = []
        since = self.repeats.since("dns")
        if since is not None and self.clock() - since > max(2.0, 2 * self.reconcile_interval):
            waiting = len(self._urgent)
            out.append(f"DNS failing for {self.clock() - since:.0f} s: {self._dns_error}"
                       + (f"; {waiting} changed answer(s) will be written when DNS answers"
                          if waiting else ""))
        if self._held_by is not None:
            out.append(f"not writing DNS: {self._held_by}")
        if self._conflicts >= CONFLICTS_STUCK:
            out.append(f"DNS writes refused as conflicts {self._conflicts} times in a row "
                       f"(re-read and re-planned each time): {self._dns_error}")
        if self._state_error is not None:
            out.append(self._state_error)
        if isinstance(self.state, HeldOverrides) and (held := self.state.problem()):
            out.append(held)
        if self.member is not None:
            problem = self.member.problem()
            if problem is not None:
                out.append(problem)
            elif self.member.leader() is None:
                out.append("the fleet has no leader: nobody writes DNS until one is elected")
            if self._publish_error is not None:
                out.append(f"this vantage's view could not be published: {self._publish_error}")
            left_out = self._voters.problem()
            if left_out is not None:
                out.append(left_out)
        if self._refused:
            since = self.repeats.since("refused") or self.clock()
            out.append(f"plan refused by safety guards for {self.clock() - since:.0f} s, "
                       f"{len(self._refused)} name(s) not written: "
                       + "; ".join(self._refusal[:3])
                       + (f"; and {len(self._refusal) - 3} more" if len(self._refusal) > 3
                          else "") + " (`failover run --force` applies it)")
        if self._blocked:
            first = heapq.nsmallest(3, self._blocked)
            more = len(self._blocked) - len(first)
            out.append(f"{len(self._blocked)} managed name(s) it may not write: " + "; ".join(
                f"{n} {self._blocked[n]}" for n in first) + (f"; and {more} more" if more else ""))
        return out

    def _read_overrides(self) -> list[Override]:
        """The overrides in state; the last ones read when the store cannot be read."""
        try:
            self._overrides = self.state.overrides()
        except FailoverError as exc:
            self._state_failed("read", str(exc))
        return self._overrides

    def _state_failed(self, op: str, error: str) -> None:
        """The state store failed: failover goes on from memory; said with backoff, in
        the metric and in /readyz; saves are tried again after 1, 2, 4... 60 s."""
        now = self.clock()
        self.metrics.state_errors.labels(op).inc()
        self.metrics.state_ok.set(0)
        first = self._state_error is None
        self._state_error = f"state store failing ({op}): {error}"
        if op in ("write", "reopen"):
            self._save_gap = min(max(1.0, self._save_gap * 2), 60.0)
            self._save_retry_at = now + self._save_gap
        said = self.repeats.say("state", f"{op}: {error}", now)
        if said is not None:
            log.error("event=state_error op=%s error=%r%s", op, said,
                      " (failover goes on; kept in memory until the state can be written)"
                      if first else "")
            self.event("error", "state", f"state store failing: {said}")

    def _note_overrides(self, overrides_list: list[Override], now: float) -> bool:
        """Record when the set of overrides in force changes: when the controller took
        up a drain, a pin or a drill (the CLI records when it was asked for)."""
        active = [o for o in overrides_list if o.active(now)]
        in_force = frozenset((o.kind, o.target, o.at) for o in active)
        if in_force == self._in_force:
            return False
        was, self._in_force = self._in_force, in_force
        self._version += 1
        if not self._writer():
            return True  # a follower takes it up; the leader says so in the history
        for e in expired(was, overrides_list, now):
            self.event(e.kind, e.subject, e.message, dict(e.detail))
        listed = ", ".join(f"{o.kind} {o.target}" for o in active) or "none"
        self.event("override", "controller", f"overrides in force: {listed}", {
            "in_force": [{"kind": o.kind, "target": o.target, "region": o.region, "at": o.at}
                         for o in active]})
        return True

    def _note_decisions(self, decisions: list[Decision]) -> None:
        changed = False
        writer = self._writer()  # a fleet's followers decide too; the leader records it
        for d in decisions:
            prev = self.decisions.get(d.key)
            # a latency "hold" keeps the same answer through noise: not news; a failback
            # hold is (it says when traffic will return)
            failback_hold = d.basis == "hold" and d.policy == "failover"
            if writer and (prev is None or prev.values != d.values or (
                    _basis_class(prev.basis) != _basis_class(d.basis)) or (
                    failback_hold and prev.basis != "hold")):
                self.event("decision", f"{d.name} {d.type}", d.reason,
                           {"values": list(d.values), "basis": d.basis})
            if prev is not None and prev.values != d.values:
                self.metrics.answer_changes.inc()
            if prev is None or prev.values != d.values or prev.basis != d.basis or (
                    prev.tier != d.tier or prev.usable != d.usable):
                changed = True
        # the tick runs every second: write decisions to state only when one changed
        self._decisions_dirty |= changed or len(decisions) != len(self.decisions)
        if changed:
            self._version += 1
            self._decisions_version += 1
        self.decisions = {d.key: d for d in decisions}
        self._holds = [d for d in decisions if d.basis == "hold"]
        self._release_at = min((d.hold_until for d in self._holds if d.hold_until), default=None)

    def _new(self, category: str, value: Any) -> bool:
        """True when `value` differs from what was last noted for `category` (and note it)."""
        if self._noted.get(category) == value:
            return False
        self._noted[category] = value
        return True

    def _update_gauges(self, snapshot: Any, overrides: list[Any], now: float) -> None:
        m = self.metrics
        regions: dict[str, bool] = {}
        for rname, _, eid, _ in self.cfg.all_endpoints():
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
        m.unserved.set(len(self._urgent) + len(self._backlog))
        kinds = {"owned by another controller": 0, "no marker": 0, "cannot be written": 0}
        for why in self._blocked.values():
            kinds["owned by another controller" if why.startswith("owned by") else
                  "no marker" if "no failover marker" in why else "cannot be written"] += 1
        for reason, n in kinds.items():
            m.not_written.labels(reason).set(n)
        m.degraded.set(1 if self.problems() else 0)
        if self.member is not None:
            leader = self.member.leader()
            writing = self._leading is not None and self.member.leading() == self._leading
            m.fleet_leader.set(1 if writing else 0)
            m.fleet_epoch.set(leader["epoch"] if leader else 0)
            m.fleet_vantages.set(1 + len(self._remote))
        if self._scheduler is not None:
            lag = self._scheduler.stats.lag_quantile(0.99)
            if lag is not None:
                m.schedule_lag.set(lag)

    # ------------------------------------------------------------------- history

    def event(self, kind: str, subject: str, message: str,
               detail: dict[str, Any] | None = None) -> None:
        if self.member is not None:  # a fleet: whose history line this is
            detail = {**(detail or {}), "vantage": self.member.vantage}
        self._events.append(Event(self.clock(), kind, subject, message, detail or {}))

    def _save(self, force: bool = False) -> None:
        """Keep what must survive a restart, now (on the calling thread)."""
        self._saved(self._saver(force)())

    async def _save_async(self, health_only: bool = False) -> None:
        """Keep what is due, on a thread; nothing while backing off after failures."""
        if self.clock() < self._save_retry_at or self.state.read_only:
            return  # backing off; a read-only store is reopened first (_check_store)
        self._saved(await asyncio.to_thread(self._saver(health_only=health_only)))

    def _saved(self, failed: _Unsaved | None) -> None:
        if failed is None:
            if self._state_error is not None and not self.state.read_only:
                self._state_error = None
                self._save_gap = 0.0
                self.metrics.state_ok.set(1)
                failures = self.repeats.clear("state")
                self.event("controller", "state", f"state store writable again after "
                           f"{failures} failure(s)" + (f"; {self._events_dropped} history "
                           "events were dropped meanwhile" if self._events_dropped else ""))
                log.info("event=state_recovered failures=%d dropped_events=%d", failures,
                         self._events_dropped)
                self._events_dropped = 0
            return
        # keep what was not written, to write it when the store takes writes again
        self._decisions_dirty |= failed.decisions
        self._dirty |= failed.health
        if failed.events:
            self._events[:0] = failed.events
            extra = len(self._events) - MAX_UNSAVED_EVENTS
            if extra > 0:
                del self._events[:extra]
                self._events_dropped += extra
        self._state_failed("write", failed.error)

    def _saver(self, force: bool = False,
               health_only: bool = False) -> Callable[[], _Unsaved | None]:
        """Take what is to be kept (decisions when one changed, events, and every
        SAVE_INTERVAL or when forced or changed the health state machines) and return
        the writes, to run on a thread: 10,000 decisions are megabytes of JSON. What is
        taken is taken here, on the loop, so nothing changes under the writer. The
        writes return what they could not keep (None: all kept)."""
        now = self.clock()
        decisions = None
        if (self._decisions_dirty or force) and not health_only and self._writer():
            decisions = list(self.decisions.values())
            self._decisions_dirty = False
        events: list[Event] = []
        if not health_only:
            events, self._events = self._events, []
        checks = health = None
        if force or health_only or self._dirty or now - self._saved_at >= SAVE_INTERVAL:
            checks, health = self.board.export(), self.board.snapshot(now)
            self._saved_at = now
            self._dirty = False

        def write() -> _Unsaved | None:
            step = "decisions"
            try:
                if decisions is not None:
                    self.state.save_decisions(decisions)
                step = "events"
                # events after the decisions they announce: a reader that sees an event
                # finds the decisions of the same tick (failover drill relies on it)
                if events:
                    self.state.record(events)
                step = "health"
                if checks is not None and health is not None:
                    self.state.save_checks(checks)
                    self.state.save_health(health)
            except FailoverError as exc:
                return _Unsaved(str(exc), decisions is not None and step == "decisions",
                                events if step in ("decisions", "events") else [],
                                checks is not None)
            return None

        return write

    # -------------------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """Everything `failover status` and /status show, as JSON-ready data."""
        data: dict[str, Any] = json.loads(self.status_maker()())
        return data

    def status_maker(self) -> Callable[[], bytes]:
        """/status as JSON, by a function to run on a thread: its inputs are taken now,
        on the loop. The records part (10,000 records: megabytes) is kept between builds
        and made again only when a decision changed, one record at a time so the loop,
        which runs the probes, is never held for long."""
        now = self.clock()
        snapshot, overrides = self.board.snapshot(now), self._read_overrides()
        cfg, ready, dry_run, last = self.cfg, self.ready, self.dry_run, self.last
        problems, blocked = self.problems(), dict(self._blocked)
        cached, version = self._records_json, self._decisions_version
        decisions = None if cached is not None and cached[0] == version else list(
            self.decisions.values())
        cluster = self.cluster_maker()

        def make() -> bytes:
            built = build_status(cfg, snapshot, overrides, [], now, ready=ready,
                                 dry_run=dry_run, last=last, problems=problems,
                                 not_written=blocked)
            if cluster is not None:
                built["cluster"] = cluster()
            head = json.dumps(built)
            if decisions is None:
                assert cached is not None
                records = cached[1]
            else:
                records = "[" + ",".join(json.dumps(r) for r in status_records(
                    cfg, decisions)) + "]"
                self._records_json = (version, records)
            return head.replace('"records": []', '"records": ' + records, 1).encode() + b"\n"

        return make

    def page_maker(self) -> Callable[[], bytes]:
        """The status page (failover.page) by a function to run on a thread: what DNS
        holds is copied here, on the loop; /status, the history and the HTML there."""
        from failover import page

        make_status = self.status_maker()
        state, now, cfg = self.state, self.clock(), self.cfg
        served: dict[tuple[str, str], list[str]] = {}
        for sets in (self.ledger.actual or {}).values():
            for (name, rtype, _), rs in sets.items():
                served.setdefault((name, rtype), []).extend(rs.values)

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

    def status_due(self, built_at: float, version: int) -> bool:
        """Whether /status built at `built_at` (steady clock) from `version` is stale:
        something it shows changed, or STATUS_REFRESH passed (health details, times)."""
        return version != self._version or self.clock() - built_at >= STATUS_REFRESH

    @property
    def version(self) -> int:
        """A number that moves whenever something /status shows changed."""
        return self._version


def status_records(cfg: Config, decisions: list[Decision],
                   served: dict[tuple[str, str], list[str]] | None = None) -> list[dict[str, Any]]:
    """Each record's decision, desired answer (and served answer, when asked) for status."""
    records = []
    pools = cfg.memo("record_pools", lambda: {(r.name, r.type): r.pool for r in cfg.records})
    several = cfg.zones is not None
    for d in decisions:
        entry: dict[str, Any] = {**d.to_dict(), "desired": list(d.values)}
        if pools.get(d.key):
            entry["pool"] = pools[d.key]
        if several:
            entry["zone"] = cfg.zone_of(d.name)
        if served is not None:
            entry["served"] = served.get((d.name, d.type), [])
        records.append(entry)
    return records


async def _stop_scheduler(sched: Scheduler | None, task: asyncio.Task[None] | None) -> None:
    if sched is not None:
        await sched.close()
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def native_for(adapter: Adapter | None) -> Callable[[str], bool]:
    """Whether a name's zone routes natively (per zone when the adapter has several)."""
    if adapter is None:
        return lambda _: False
    per_name = getattr(adapter, "native_for", None)
    if per_name is not None:
        return cast(Callable[[str], bool], per_name)
    flag = adapter.native_routing
    return lambda _: flag


def fence(adapter: Adapter, epoch: int | None, holder: str, owner: str,
          may_write: Callable[[], bool] | None = None, renewed: int | None = None) -> None:
    """Fence the adapter's writes (each zone's, for several) with a writer's epoch, in
    the fence of `owner` (ownership.owner_id); with `may_write`, every message a write
    sends checks it first (a fleet leader's deadline); `renewed`: a single controller's
    renewal stamp."""
    for a in getattr(adapter, "adapters", {"": adapter}).values():
        set_fence = getattr(a, "fence", None)
        if set_fence is not None:
            set_fence(epoch, holder, renewed)
            a.fence_owner = owner
        if hasattr(a, "may_write"):
            a.may_write = may_write


def reachable(adapter: Adapter) -> bool | None:
    """Whether every zone's DNS server answers now (its SOA serial); None when the
    adapter cannot tell cheaply (Route 53). Blocking: call it off the loop."""
    answers: bool | None = None
    for a in getattr(adapter, "adapters", {"": adapter}).values():
        ask = getattr(a, "serial", None)
        if ask is None:
            continue
        try:
            ask()
        except DnsError:
            return False
        answers = True
    return answers


def take_over(adapter: Adapter) -> bool:
    """A new leader's first write: its epoch into every zone's fence. True when written."""
    took = False
    for a in getattr(adapter, "adapters", {"": adapter}).values():
        take = getattr(a, "take_over", None)
        if take is not None:
            took = bool(take()) or took
    return took


def _serial_of(adapter: Adapter) -> int | None:
    """The zone's SOA serial as its primary serves it; None when it cannot say."""
    ask = getattr(adapter, "serial", None)
    if ask is None:
        return None
    try:
        return cast(int | None, ask())
    except DnsError:
        return None


def _serial_after(adapter: Adapter, before: int | None, messages: int) -> int | None:
    """The SOA serial after our own write when it moved by exactly our messages (BIND
    adds one per UPDATE), so the next refresh still knows nothing else changed; None
    (read in full at the next refresh) when it cannot tell."""
    if before is None or not messages:
        return None
    now = _serial_of(adapter)
    return now if now == (before + messages) % 2**32 else None


def steady_clock() -> Callable[[], float]:
    """Wall-clock seconds read once at start, then advanced by the monotonic clock.

    Times stay comparable with the wall clock (history, restarts), but a wall clock
    stepped back or forth while the controller runs moves none of its durations.
    """
    wall, mono = time.time(), time.monotonic()
    return lambda: wall + (time.monotonic() - mono)


def _basis_class(basis: str) -> str:
    return "health" if basis in ("health", "hold") else basis


def build_status(cfg: Config, snapshot: Any, overrides: list[Any], decisions: list[Decision],
                 now: float, *, ready: bool | None = None, dry_run: bool | None = None,
                 last: Tick | None = None,
                 served: dict[tuple[str, str], list[str]] | None = None,
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
