"""Probe worker processes: the same results as in-process probing, every target on its
interval, workers sharded by endpoint and stopped with the pool."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

from failover.probes import ProbeResult, ProbeTarget
from failover.probes.workers import WorkerPool, shard, worker_count
from tests.fleet import closed_port, fleet


def target(i: int, port: int, check: str = "c", interval: float = 0.2) -> ProbeTarget:
    return ProbeTarget(key=f"r/e{i}#{check}", endpoint=f"r/e{i}", check=check, type="HTTP",
                       ip="127.0.0.1", fqdn=None, port=port, path="/health",
                       host=f"127.0.0.1:{port}", sni=None, search=None, tls=False,
                       verify_tls=True, interval=interval, connect_timeout=1,
                       response_timeout=1, body_timeout=1)


def test_workers_probe_on_schedule_and_report_what_they_saw() -> None:
    with fleet([{"name": "ok", "behaviour": "ok"}, {"name": "500", "behaviour": "status:500"}]
               ) as ready:
        ok, bad = ready["ok"][1], ready["500"][1]
        refused = closed_port()
        targets = [target(i, ok) for i in range(6)] + [target(6, bad), target(7, refused)]
        seen: Counter[str] = Counter()
        last: dict[str, ProbeResult] = {}
        pids: list[int] = []

        def on_result(t: ProbeTarget, r: ProbeResult) -> None:
            seen[t.key] += 1
            last[t.key] = r

        async def main() -> None:
            pool = WorkerPool(targets, on_result, workers=2)
            stop = asyncio.Event()
            task = asyncio.ensure_future(pool.run(stop=stop))
            # every target reported at least three times: on its interval, not once
            for _ in range(300):
                if len(seen) == len(targets) and min(seen.values()) >= 3:
                    break
                await asyncio.sleep(0.05)
            pids.extend(p.pid for p in pool._procs)
            stop.set()
            await task

        asyncio.run(main())
        assert len(pids) == 2
        assert min(seen.values()) >= 3, seen
        assert all(last[f"r/e{i}#c"].ok and last[f"r/e{i}#c"].reason == "status 200"
                   for i in range(6))
        assert last["r/e0#c"].latency_ms is not None
        assert (last["r/e6#c"].ok, last["r/e6#c"].reason) == (False, "status 500")
        assert (last["r/e7#c"].ok, last["r/e7#c"].reason) == (False, "connection refused")
        for pid in pids:  # the workers are gone with the pool (ended and reaped)
            assert not os.path.exists(f"/proc/{pid}")


def test_an_endpoints_checks_share_a_worker_and_every_target_has_one() -> None:
    targets = [target(i, 80, check) for i in range(50) for check in ("a", "b")]
    shards = shard(targets, 3)
    assert sorted(i for s in shards for i in s) == list(range(100))
    for s in shards:
        endpoints = {targets[i].endpoint for i in s}
        assert all(targets[i].endpoint in endpoints for i in s)
        for e in endpoints:
            assert sum(targets[i].endpoint == e for i in s) == 2


def test_workers_only_when_asked_or_when_one_core_is_not_enough() -> None:
    few = [target(i, 80, interval=1.0) for i in range(100)]
    many = [target(i, 80, interval=1.0) for i in range(5000)]
    assert worker_count(few, None) == 0
    assert worker_count(few, 3) == 3
    assert worker_count(many, 0) == 0
    cores = len(os.sched_getaffinity(0))
    assert worker_count(many, None) == (cores if cores > 1 else 0)


def test_a_worker_that_dies_is_started_again_and_its_endpoints_checked() -> None:
    with fleet([{"name": "ok", "behaviour": "ok"}]) as ready:
        port = ready["ok"][1]
        targets = [target(i, port, interval=0.1) for i in range(4)]
        seen: Counter[str] = Counter()
        pids: list[int] = []

        async def until(cond: object, what: str) -> None:
            for _ in range(400):
                if callable(cond) and cond():
                    return
                await asyncio.sleep(0.025)
            raise AssertionError(what)

        async def main() -> None:
            pool = WorkerPool(targets, lambda t, r: seen.update([t.key]), workers=1)
            stop = asyncio.Event()
            task = asyncio.ensure_future(pool.run(stop=stop))
            await until(lambda: len(pool._procs) == 1 and len(seen) == 4, "first results")
            first = pool._procs[0].pid
            os.kill(first, signal.SIGKILL)
            await until(lambda: pool._procs and pool._procs[0].pid != first, "a new worker")
            pids.extend([first, pool._procs[0].pid])
            seen.clear()
            await until(lambda: len(seen) == 4 and min(seen.values()) >= 3, "checked again")
            stop.set()
            await task

        asyncio.run(main())
        assert all(not os.path.exists(f"/proc/{pid}") for pid in pids)
