"""The probe side: probe results -> the health board, and the wake-ups they cause.

It runs the probe scheduler for the config's targets, feeds every result to the health
board (on the controller's steady clock), makes a drill's faulted regions fail, counts
the first full probe round (nothing is written before it), and wakes the loop when a
status flips or a smoothed latency moved enough to matter for latency records.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING

from failover.cluster.fleet_side import FleetSide
from failover.control.decider import Decider
from failover.control.journal import Journal
from failover.control.writer import Writer
from failover.probes import ProbeResult, ProbeTarget
from failover.probes.scheduler import Scheduler
from failover.probes.workers import WorkerPool, worker_count

if TYPE_CHECKING:
    from failover.control.house import House
    from failover.health import Transition

# the controller's logger: operators' log filters key on its name
log = logging.getLogger("failover.controller")

LATENCY_STEP_MS, LATENCY_STEP_SHARE = 1.0, 0.05  # a latency move that re-decides


class ProbeSide:
    """The probe scheduler, and what each probe result changes."""

    def __init__(self, house: House, fleet: FleetSide, decider: Decider, writer: Writer,
                 journal: Journal) -> None:
        self.house = house
        self.fleet, self.decider, self.writer, self.journal = fleet, decider, writer, journal
        self.scheduler: Scheduler | WorkerPool | None = None
        self.scheduler_task: asyncio.Task[None] | None = None
        self.seen: set[str] = set()  # targets with a result since the config was set
        self.faulted: set[str] = set()  # regions whose checks a drill makes fail

    def start(self) -> None:
        """Start probing the config's targets on their schedule."""
        keep_out_of_full_collections()
        targets = self.house.targets
        workers = worker_count(targets, self.house.cfg.controller.probe_workers)
        self.scheduler = (WorkerPool(targets, self.on_result, workers=workers) if workers
                          else Scheduler(targets, self.on_result))
        self.scheduler_task = asyncio.get_running_loop().create_task(
            self.scheduler.run(stop=asyncio.Event()))

    async def stop(self) -> None:
        """Stop probing, and wait for the scheduler to end."""
        sched, task = self.scheduler, self.scheduler_task
        self.scheduler = self.scheduler_task = None
        await stop_scheduler(sched, task)

    def stop_soon(self) -> None:
        """Stop this config's probes (these, not whichever scheduler runs when the task
        gets to run: the new one is started before it does)."""
        old = (self.scheduler, self.scheduler_task)
        self.scheduler = self.scheduler_task = None
        asyncio.get_running_loop().create_task(stop_scheduler(*old))

    def on_result(self, target: ProbeTarget, result: ProbeResult) -> None:
        """Feed one probe result to health; a status change wakes the loop."""
        h = self.house
        m = h.metrics
        if self.faulted and target.endpoint.split("/", 1)[0] in self.faulted:
            # the fault hook of `failover drill --mode fail-checks`: the probe ran, but its
            # result is a failure, so detection takes the real threshold x interval
            result = ProbeResult(False, "drill: checks made to fail", result.at)
        latency_ms = result.latency_ms
        m.probes.observe(target.endpoint, target.check, result.ok, latency_ms)
        try:
            # health time is the controller's steady clock, not the wall clock the probe
            # read: a wall clock stepped back or forth must not stretch a failback delay
            flip = h.board.observe(target.endpoint, target.check, result.ok, result.reason,
                                   h.clock(), latency_ms)
        except KeyError:
            return  # a result for a config that was just reloaded away
        self.seen.add(target.key)
        self.fleet.on_result(target)
        if flip is not None:
            self.on_flip(flip)
        elif h.latency_records and latency_ms is not None:
            self.latency_moved(target.endpoint)
        if not h.ready and len(self.seen) >= len(h.targets):
            h.ready = True
            m.ready.set(1)
            h.event("controller", "controller", "first probe round complete: ready")
            h.wake()

    def latency_moved(self, endpoint: str) -> None:
        """Re-decide when an endpoint's smoothed latency moved enough to matter for
        latency records (not on every probe: noise below the step is ignored)."""
        h = self.house
        now = h.board.latency(endpoint)
        if now is None:
            return
        then = self.decider.lat_decided.get(endpoint)
        if then is None or abs(now - then) > max(LATENCY_STEP_MS, LATENCY_STEP_SHARE * then):
            self.decider.decide = True
            h.wake()

    def on_flip(self, flip: Transition) -> None:
        """An endpoint's status changed (here or in the fleet's vote): decide again."""
        h = self.house
        state = "healthy" if flip.health.healthy else "unhealthy"
        if h.is_writer():  # in a fleet every instance sees the flip; the leader records it
            h.event("health", flip.endpoint,
                    f"{flip.endpoint} is {state}: {flip.health.reason}",
                    {"healthy": flip.health.healthy})
        log.info("event=health endpoint=%s healthy=%s reason=%r", flip.endpoint,
                 flip.health.healthy, flip.health.reason)
        self.writer.pending.append(flip.health.since or h.clock())
        self.journal.dirty = True
        self.decider.decide = True
        h.changed()
        h.wake()

    def schedule_lag(self) -> float | None:
        """The probes' 99th percentile lag behind their schedule (s), when running."""
        if self.scheduler is None:
            return None
        return self.scheduler.stats.lag_quantile(0.99)


def keep_out_of_full_collections() -> None:
    """What is alive now (the config, the targets, the board) lives as long as the config:
    move it out of reach of the cyclic GC's full collections, whose pauses over 10,000
    endpoints' objects were schedule lag. What a reload left behind is collected first."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def stop_scheduler(sched: Scheduler | WorkerPool | None, task: asyncio.Task[None] | None) -> None:
    """Close a scheduler and wait for its task to end."""
    if sched is not None:
        await sched.close()
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
