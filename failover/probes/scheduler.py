"""The probe scheduler: every target on its own interval, phases spread, bounded concurrency.

Each target fires at fixed times (start + phase + k * interval), so a slow probe never
shifts later ones; a probe still running when the next is due does not delay it (as
Route 53's checkers, which do not wait for each other). Concurrency is bounded; when as
many probes again wait for a slot, new ones are shed (counted) instead of queued. The
schedule lag (start of a probe minus its due time) is measured.

Due times are kept in one heap and fired in batches by a single timer (at most one
wake-up every BATCH seconds), not by a timer, a task waiting on a semaphore and a
wake-up per probe: pacing costs little more than running the same probes back to back.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from failover.probes.check import probe
from failover.probes.plain import PlainProbe, is_plain
from failover.probes.result import ProbeResult
from failover.probes.target import ProbeTarget

ResultSink = Callable[[ProbeTarget, ProbeResult], None]
ProbeFn = Callable[[ProbeTarget], Awaitable[ProbeResult]]
LAG_SAMPLES = 65536
BATCH = 0.002  # seconds: probes due this close together start in one wake-up


@dataclass
class SchedulerStats:
    """Counters and the most recent schedule lags (seconds)."""

    started: int = 0
    finished: int = 0
    missed: int = 0  # due times skipped because the loop fell a whole interval behind
    shed: int = 0  # probes not started because `concurrency` more were already waiting
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))

    def lag_quantile(self, q: float) -> float | None:
        """A quantile (0-1) of the recorded lags, in seconds; None before any probe."""
        if not self.lags:
            return None
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phases(targets: Iterable[ProbeTarget]) -> dict[str, float]:
    """Each target's offset within its interval, spread evenly so checks never bunch.

    Targets of one interval are ordered by a stable hash of their key, so a target keeps
    its phase across restarts, and a reload that adds or drops one target moves the
    others by at most one slot.
    """
    groups: dict[float, list[ProbeTarget]] = {}
    for t in targets:
        groups.setdefault(t.interval, []).append(t)
    out = {}
    for interval, group in groups.items():
        group.sort(key=lambda t: (zlib.crc32(t.key.encode()), t.key))
        for i, t in enumerate(group):
            out[t.key] = interval * i / len(group)
    return out


class Scheduler:
    """Runs probes on schedule and hands each result to `on_result` (in the loop thread)."""

    def __init__(self, targets: Iterable[ProbeTarget], on_result: ResultSink, *,
                 concurrency: int = 1024, probe_fn: ProbeFn = probe) -> None:
        self.targets = list(targets)
        self.on_result = on_result
        self.concurrency = concurrency
        self.stats = SchedulerStats()
        self._probe = probe_fn
        self._due: list[tuple[float, int]] = []  # heap of (due time, target index)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._plain: dict[int, PlainProbe] = {}  # probes run by callbacks, in flight
        self._seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = 0
        self._waiting: deque[tuple[int, float]] = deque()
        self._closed = False

    async def run(self, duration: float | None = None, stop: asyncio.Event | None = None) -> None:
        """Probe until `duration` seconds have passed or `stop` is set, then cancel cleanly."""
        self._loop = loop = asyncio.get_running_loop()
        start = loop.time()
        offsets = phases(self.targets)
        self._due = [(start + offsets[t.key], i) for i, t in enumerate(self.targets)]
        heapq.heapify(self._due)
        self._arm()
        try:
            waiter = asyncio.ensure_future((stop or asyncio.Event()).wait())
            await asyncio.wait([waiter], timeout=duration)
            waiter.cancel()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop firing and cancel probes in flight."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        self._waiting.clear()
        for running in list(self._plain.values()):
            running.cancel()
        self._plain.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _arm(self) -> None:
        """One timer for the earliest due time, never sooner than BATCH after the last."""
        if self._closed or not self._due:
            return
        loop = self._loop
        assert loop is not None
        at = max(self._due[0][0], loop.time() + BATCH if self._timer_at else 0.0)
        self._timer = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        now = self._timer_at = loop.time()
        due_heap, targets = self._due, self.targets
        while due_heap and due_heap[0][0] <= now:
            due, i = due_heap[0]
            interval = targets[i].interval
            nxt = due + interval
            if nxt <= now:  # fell a whole interval behind: skip, do not burst
                behind = int((now - due) // interval)
                self.stats.missed += behind
                nxt = due + (behind + 1) * interval
            heapq.heapreplace(due_heap, (nxt, i))
            if self._running < self.concurrency:
                self._start(i, due)
            elif len(self._waiting) < self.concurrency:
                self._waiting.append((i, due))
            else:
                # overloaded: shed rather than queue without bound, which would only raise
                # the CPU cost of every probe and the lag of all of them
                self.stats.shed += 1
        self._arm()

    def _start(self, i: int, due: float) -> None:
        loop = self._loop
        assert loop is not None
        self._running += 1
        self.stats.lags.append(loop.time() - due)
        self.stats.started += 1
        target = self.targets[i]
        if self._probe is probe and is_plain(target):
            # the default probe of a plain target: by callbacks, without a task
            n = self._seq = self._seq + 1
            self._plain[n] = PlainProbe(loop, target, functools.partial(self._plain_done, n,
                                                                         target))
            return
        task = loop.create_task(self._run(target))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _plain_done(self, n: int, target: ProbeTarget, result: ProbeResult) -> None:
        del self._plain[n]
        self._done(None)
        self.stats.finished += 1
        self.on_result(target, result)

    def _done(self, task: asyncio.Task[None] | None) -> None:
        if task is not None:
            self._tasks.discard(task)
        self._running -= 1
        if self._waiting and not self._closed:
            self._start(*self._waiting.popleft())

    async def _run(self, target: ProbeTarget) -> None:
        result = await self._probe(target)
        self.stats.finished += 1
        self.on_result(target, result)


async def probe_all(targets: Iterable[ProbeTarget], *, concurrency: int = 1024,
                    probe_fn: ProbeFn = probe) -> list[tuple[ProbeTarget, ProbeResult]]:
    """Probe every target once, concurrently (bounded); results in target order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(t: ProbeTarget) -> tuple[ProbeTarget, ProbeResult]:
        async with sem:
            return t, await probe_fn(t)

    return list(await asyncio.gather(*(one(t) for t in targets)))
