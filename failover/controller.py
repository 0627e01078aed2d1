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

This module keeps the wiring and the order of a tick's stages; each role is a file of
its own (failover/control/, and failover/cluster/fleet_side.py for the fleet).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.cluster.fleet_side import FleetSide
from failover.control.decider import Decider
from failover.control.house import Deposed, House, Tick
from failover.control.journal import Journal
from failover.control.probe_side import ProbeSide
from failover.control.status_side import StatusSide, build_status, status_records
from failover.control.writer import Waiting, Writer, native_for
from failover.control.zone_fence import HeldElsewhere, ZoneFence
from failover.dns.base import DnsError, DnsFenced, WriterDeposed
from failover.health import HealthBoard
from failover.notify import Notifier
from failover.probes import ProbeResult, ProbeTarget, targets_for
from failover.reconcile import Ledger
from failover.state.store import as_overrides
from policies.stored import vet

if TYPE_CHECKING:
    from failover.cluster.member import Member
    from failover.config import Config
    from failover.dns.base import Adapter
    from failover.state.store import StateStore

__all__ = ["Controller", "Tick", "build_status", "status_records", "steady_clock"]

RECONCILE_INTERVAL = 1.0  # seconds between ticks when nothing wakes the loop earlier


class Controller(House):
    """One controller for one config; `run()` until stopped, `reload()` a new config."""

    def __init__(self, cfg: Config, *, state: StateStore, adapter: Adapter | None,
                 dry_run: bool = False, force: bool = False,
                 clock: Callable[[], float] | None = None,
                 reconcile_interval: float = RECONCILE_INTERVAL,
                 member: Member | None = None, take_over: bool = False) -> None:
        super().__init__(state=state, member=member, dry_run=dry_run, force=force,
                         clock=clock or steady_clock(), reconcile_interval=reconcile_interval)
        self.notifier = Notifier(self.metrics)
        self.on_tick: Callable[[], None] | None = None  # called after every loop turn
        # the roles, each a file of its own, each handed the house and the roles below it
        self.journal = journal = Journal(self)
        self.writer = Writer(self)
        self.zone_fence = ZoneFence(self, self.writer, take_over)
        self.decider = Decider(self, self.writer, journal)
        self.fleet = FleetSide(self, journal, self.zone_fence, self.writer)
        self.probes = ProbeSide(self, self.fleet, self.decider, self.writer, journal)
        self.fleet.on_flip = self.probes.on_flip  # a flip in the fleet's vote
        self.fleet.on_views = self.decider.remote_views_changed  # their latencies
        self.status_side = StatusSide(self, writer=self.writer, zone_fence=self.zone_fence,
                                      journal=journal, fleet=self.fleet, probes=self.probes,
                                      decider=self.decider)
        # only what the config vouches for: the store may hold anything (policies/stored.py)
        remembered = vet(cfg, journal.load("decisions", state.load_decisions, {}), self.clock())
        self.decisions = remembered.decisions
        journal.state_error = journal.state_error or journal.load_error
        self._setup(cfg, adapter, journal.load("health", state.load_checks, {}),
                    journal.load("health", state.load_health, None))
        journal.state_error = journal.state_error or journal.load_error
        for dropped in remembered.dropped:
            self.journal.distrusted(dropped)

    def _setup(self, cfg: Config, adapter: Adapter | None, checks: Any, health: Any) -> None:
        """Take up a config (the first, or a reload's), keeping health state machines."""
        self.cfg = cfg
        self.adapter = adapter
        if self.notifier is not None:
            self.notifier.configure(cfg)
        self.board = HealthBoard(cfg, local_name=self.member.vantage if self.member
                                 else cfg.controller.vantage or "local")
        self.board.restore(checks, health)
        self.fleet.restore_remote(self.clock())
        self.targets = targets_for(cfg)
        self.probes.seen = set()
        self.ready = not self.targets
        self.zone_fence.reset(adapter)
        self.ledger = Ledger(cfg, ownership=adapter is not None,
                             native=native_for(adapter),
                             decorate=adapter.decorate if adapter is not None else None)
        self.decider.decide = True  # decide every record at the next tick
        self.writer.reset()
        self.decider.decisions_version += 1
        self.latency_records = any(r.policy == "latency" for r in cfg.records)
        self.changed()

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event, once: bool = False) -> None:
        """Probe and reconcile until `stop` is set; with `once`, one round and one tick."""
        self._wake = asyncio.Event()
        self.event("controller", "controller", "started" + (" (dry run)" if self.dry_run else ""))
        watcher: asyncio.Future[None] | None = None
        try:
            if once:
                await self._run_once()
                return
            self.probes.start()
            watcher = asyncio.ensure_future(self.journal.watch_state(stop))
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
                    self.fleet.step()
                if self.ready:
                    await self.tick()
                self._published()
        finally:
            if watcher is not None:
                watcher.cancel()
            await self.probes.stop()
            self.event("controller", "controller", "stopped")
            self.journal.save(force=True)
            if self.notifier is not None:  # what waits is sent once, briefly
                await asyncio.to_thread(self.notifier.close)

    async def _run_once(self) -> None:
        """`run --once`: one full probe round, then ticks until the first write is out."""
        from failover.probes.scheduler import probe_all

        for target, result in await probe_all(self.targets):
            self.on_result(target, result)
        await self.tick()
        writer = self.writer
        while writer.backlog and self.last.error is None and not (
                writer.refused.issuperset(writer.backlog)):
            await self.tick()  # the rest of a large first write, chunk by chunk
        self._published()

    def reload(self, cfg: Config, adapter: Adapter | None) -> None:
        """Switch to a new, already validated config; health state carries over."""
        checks = self.board.export()
        health = self.board.snapshot(self.clock())
        ready = self.ready
        # checks the reload leaves as they were go on probing on their schedule: a probe
        # in flight is not lost, and a burst of reloads cannot starve or repeat a probe
        restart = self.probes.scheduler is not None and targets_for(cfg) != self.targets
        if restart:
            self.probes.stop_soon()  # the old config's probes; the new ones start below
        self._setup(cfg, adapter, checks, health)
        # what the old config answered and the new one does not have is forgotten
        self.decisions = vet(cfg, self.decisions, self.clock()).decisions
        # a reload does not pause failover: a controller that was ready stays ready, and
        # an endpoint the new config adds starts healthy (Route 53's rule for a new check)
        # until its own probes say otherwise, within one interval
        self.ready = self.ready or ready
        self.event("config", "config", "reloaded")
        if restart:
            self.probes.start()
        self.wake()

    def _published(self) -> None:
        if self.on_tick is not None:
            self.on_tick()

    # ---------------------------------------------------------------------- tick

    async def tick(self) -> Tick:
        """One reconcile: decide what changed, write it first, then a chunk of the bulk."""
        started = time.perf_counter()
        now = self.clock()
        tick = Tick(at=now)
        journal, decider, writer = self.journal, self.decider, self.writer
        if journal.dirty:
            # health changed: keep it before writing DNS, so that a kill between the write
            # and the next save cannot make a restart undo the write
            await journal.save_async(health_only=True)
        overrides_list = journal.read_overrides()
        overrides = as_overrides(overrides_list, now)
        self.probes.faulted = {o.region for o in overrides_list
                               if o.kind == "fault" and o.active(now)}
        if journal.note_overrides(overrides_list, now):
            decider.decide = True
        snapshot = self.board.snapshot(now)
        writing = self.is_writer()
        try:
            if writing:
                await self._reconcile(tick, overrides, now)
            elif decider.due():
                # a fleet follower decides (for its status, and to be ready to lead) but
                # reads and writes no DNS: the leader does
                await decider.decide_now(tick, overrides, full=False)
        except (HeldElsewhere, Waiting) as stopped:
            # held by another controller, or backing off after DNS errors: decide on
            # (status shows what will be written when it may write), write nothing
            if decider.due():
                await decider.decide_now(tick, overrides, full=False)
            tick.error = (self.zone_fence.held_by if isinstance(stopped, HeldElsewhere)
                          else writer.dns_error)
        except (Deposed, WriterDeposed):
            tick.error = "no longer the fleet's leader: wrote nothing"
            self.ledger.actual = None
            self.wake()
        except DnsFenced as exc:
            tick.error = str(exc)
            self.ledger.actual = None
            if self.member is not None:
                await self.fleet.fenced(exc)
            else:  # another controller took the zone over: this one stops writing
                self.zone_fence.held("another controller took the zone over and writes it "
                                     f"now: {exc}", now)
        except DnsError as exc:
            writer.failed(exc, tick, now)
        else:
            if writing:
                writer.succeeded(tick)
            else:
                writer.drop_work()
        if tick.error != self.last.error:
            self.changed()
        self.status_side.update_gauges(snapshot if tick.snapshot is None else tick.snapshot,
                                       overrides_list, now)
        self.last = tick
        await journal.save_async()
        self.metrics.reconcile.observe(time.perf_counter() - started)
        return tick

    async def _reconcile(self, tick: Tick, overrides: Any, now: float) -> None:
        """The writer's stages in order: the zone's fence, the backoff, the adapter's
        preparation, the fence taken, DNS read, decide, write."""
        await self.zone_fence.step(now)
        self.writer.check_backoff(now)
        await self.writer.prepare()
        await self.zone_fence.take()
        full = await self.writer.refresh(now)
        # a reading taken in the background changes no decision: only one taken at
        # start or after an error (the ledger was empty) decides everything again
        if (full and self.writer.drift is None) or self.decider.due():
            await self.decider.decide_now(tick, overrides, full)
        await self.writer.write_due(tick, full)

    # ---------------------------------------------- what other parts ask of it

    def on_result(self, target: ProbeTarget, result: ProbeResult) -> None:
        """Feed one probe result to health; a status change wakes the loop."""
        self.probes.on_result(target, result)

    def problems(self) -> list[str]:
        """Why the controller is degraded (for /readyz, /status and the metric)."""
        return self.status_side.problems()

    def status_maker(self) -> Callable[[], bytes]:
        """/status as JSON, by a function to run on a thread (see StatusSide)."""
        return self.status_side.status_maker()

    def page_maker(self) -> Callable[[], bytes]:
        """The status page, by a function to run on a thread (see StatusSide)."""
        return self.status_side.page_maker()

    def cluster_maker(self) -> Callable[[], dict[str, Any]] | None:
        """The fleet's part of /status, by a function to run on a thread; None alone."""
        return self.fleet.cluster_maker()

    def status_due(self, built_at: float, version: int, asked: bool = True) -> bool:
        """Whether /status built at `built_at` from `version` is stale (see StatusSide)."""
        return self.status_side.status_due(built_at, version, asked)


def steady_clock() -> Callable[[], float]:
    """Wall-clock seconds read once at start, then advanced by the monotonic clock.

    Times stay comparable with the wall clock (history, restarts), but a wall clock
    stepped back or forth while the controller runs moves none of its durations.
    """
    wall, mono = time.time(), time.monotonic()
    return lambda: wall + (time.monotonic() - mono)
