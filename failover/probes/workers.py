"""Probe worker processes: the probe engine on every core, sharded by endpoint.

One Python process checks at most one core's worth of endpoints (a fresh connection
costs ~60 us of kernel CPU alone). Past that, `WorkerPool` runs the scheduler and the
probes in worker processes (`python -m failover.probes.workers`), each over the targets
of a share of the endpoints, and hands their results to the controller's `on_result`,
in the controller's loop, as the in-process `Scheduler` does. Workers send results in
batches (every FLUSH seconds, compact tuples) with their schedule lags; the controller
keeps the health board, so Route 53's semantics are computed in one place.

A worker ends when its input closes (the controller went away) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import struct
import sys
import zlib
from collections import deque
from collections.abc import Iterable
from typing import Any

from failover.probes.result import ProbeResult
from failover.probes.scheduler import ResultSink, Scheduler, SchedulerStats
from failover.probes.target import ProbeTarget

FLUSH = 0.02  # seconds between a worker's batches of results
RESTART_DELAY = 1.0  # seconds before a worker that ended is started again
HEADER = struct.Struct("!I")
# past this many checks a second one process's core is mostly spent: use every core
AUTO_RATE = 2000.0
log = logging.getLogger(__name__)


def worker_count(targets: Iterable[ProbeTarget], setting: int | None) -> int:
    """How many worker processes to probe with: the setting (0: in the controller's own
    process), or with none set, one per core once the checks due per second exceed
    what one process does comfortably."""
    if setting is not None:
        return setting
    rate = sum(1.0 / t.interval for t in targets)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) if rate > AUTO_RATE and (cores or 1) > 1 else 0


def shard(targets: list[ProbeTarget], n: int) -> list[list[int]]:
    """Target indexes per worker: all checks of one endpoint in the same worker."""
    out: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(targets):
        out[zlib.crc32(t.endpoint.encode()) % n].append(i)
    return out


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


class WorkerPool:
    """Like `Scheduler` (run, close, stats), with the probing done in worker processes."""

    def __init__(self, targets: Iterable[ProbeTarget], on_result: ResultSink, *,
                 workers: int) -> None:
        self.targets = list(targets)
        self.on_result = on_result
        self.workers = workers
        self.stats = SchedulerStats()
        self._procs: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []
        self._closed = False

    async def run(self, duration: float | None = None, stop: asyncio.Event | None = None) -> None:
        """Probe until `duration` seconds have passed or `stop` is set, then stop the workers."""
        loop = asyncio.get_running_loop()
        self._closed = False
        try:
            self._readers = [loop.create_task(self._keep(idx))
                             for idx in shard(self.targets, self.workers) if idx]
            waiter = asyncio.ensure_future((stop or asyncio.Event()).wait())
            await asyncio.wait([waiter], timeout=duration)
            waiter.cancel()
        finally:
            await self.close()

    async def _keep(self, idx: list[int]) -> None:
        """One worker for a share of the targets, started again if it ever ends: a
        worker that died must not leave its endpoints unchecked (and healthy)."""
        while not self._closed:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "failover.probes.workers",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            self._procs.append(proc)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(_frame([self.targets[i] for i in idx]))
                await proc.stdin.drain()
            except ConnectionError:
                pass  # it ended at once: said below, started again
            await self._read(proc.stdout, idx)
            await proc.wait()
            if self._closed:
                return
            self._procs.remove(proc)
            log.error("event=probe_worker_exited pid=%d returncode=%s targets=%d: started "
                      "again", proc.pid, proc.returncode, len(idx))
            await asyncio.sleep(RESTART_DELAY)

    async def _read(self, stream: asyncio.StreamReader, idx: list[int]) -> None:
        targets, on_result, stats = self.targets, self.on_result, self.stats
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                size = HEADER.unpack(await stream.readexactly(HEADER.size))[0]
                results, lags, counts = pickle.loads(await stream.readexactly(size))
                stats.lags.extend(lags)
                stats.started += counts[0]
                stats.missed += counts[1]
                stats.shed += counts[2]
                for i, ok, reason, at, connect_ms, first_byte_ms in results:
                    stats.finished += 1
                    on_result(targets[idx[i]],
                              ProbeResult(ok, reason, at, connect_ms, first_byte_ms))

    async def close(self) -> None:
        """Stop the workers (by their PIDs) and wait for them."""
        self._closed = True
        # first what starts workers, so that none starts behind this
        readers, self._readers = self._readers, []
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


# ---------------------------------------------------------------- the worker side

async def _work(targets: list[ProbeTarget]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    index = {t.key: i for i, t in enumerate(targets)}
    results: list[tuple[Any, ...]] = []
    reasons: dict[str, str] = {}  # one string object per distinct reason: pickled once

    def sink(t: ProbeTarget, r: ProbeResult) -> None:
        reason = reasons.setdefault(r.reason, r.reason) if len(reasons) < 10_000 else r.reason
        results.append((index[t.key], r.ok, reason, r.at, r.connect_ms, r.first_byte_ms))

    sched = Scheduler(targets, sink, concurrency=2048)
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(1, "wb", buffering=0))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def flush() -> None:
        done = (0, 0, 0)
        while not stop.is_set():
            await asyncio.sleep(FLUSH)
            if out.is_closing():
                stop.set()
                return
            # the lags since the last batch: the controller keeps the window of them
            lags, sched.stats.lags = list(sched.stats.lags), deque()
            counts = (sched.stats.started, sched.stats.missed, sched.stats.shed)
            delta = tuple(a - b for a, b in zip(counts, done, strict=True))
            done = counts
            if results or lags:
                batch, results[:] = list(results), []
                out.write(_frame((batch, lags, delta)))

    async def until_closed() -> None:
        await reader.read()  # the controller never writes again: EOF when it is gone
        stop.set()

    tasks = [loop.create_task(flush()), loop.create_task(until_closed())]
    try:
        await sched.run(stop=stop)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    """A worker: targets from stdin (one frame), results to stdout until stopped."""
    from failover.probes.runtime import run_loop

    stdin = sys.stdin.buffer
    size = HEADER.unpack(stdin.read(HEADER.size))[0]
    targets = pickle.loads(stdin.read(size))
    gc.freeze()  # the targets live as long as the worker: no full collection walks them
    run_loop(_work(targets))


if __name__ == "__main__":
    main()
