"""SIGHUP reloads coalesced: one in flight, at most one queued, the last request never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from failover.reloads import Reloads


class Gated:
    """A reload that waits until the test lets it end; what `Reloads` had received when
    each one started."""

    def __init__(self) -> None:
        self.reloads: Reloads | None = None
        self.started: list[int] = []  # signals received when each reload started
        self.gates: list[asyncio.Event] = []

    async def __call__(self) -> None:
        assert self.reloads is not None
        self.started.append(self.reloads.requested)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()

    def finish(self) -> None:
        """Let the reload in flight end."""
        self.gates[-1].set()


async def settle() -> None:
    """Let every task that can run, run (no clock involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def run(test: Callable[[Reloads, Gated], Awaitable[None]], gap: float = 0.0) -> None:
    async def main() -> None:
        gated = Gated()
        reloads = gated.reloads = Reloads(gated, gap=gap)
        task = asyncio.ensure_future(reloads.run())
        try:
            await asyncio.wait_for(test(reloads, gated), timeout=30)
        finally:
            task.cancel()

    asyncio.run(main())


def test_a_burst_during_a_reload_is_one_more_reload_that_starts_after_the_last_signal() -> None:
    async def test(reloads: Reloads, gated: Gated) -> None:
        reloads.request()
        await settle()
        assert gated.started == [1]  # at once: nothing was running
        for _ in range(200):
            reloads.request()
            await settle()
        assert gated.started == [1]  # one in flight; the burst is one queued reload
        gated.finish()
        await settle()
        assert gated.started == [1, 201]  # it began after the burst's last signal
        assert reloads.covering == 200
        gated.finish()
        await settle()
        assert reloads.performed == 2 and len(gated.started) == 2

    run(test)


def test_a_signal_while_the_queued_reload_runs_queues_another() -> None:
    async def test(reloads: Reloads, gated: Gated) -> None:
        reloads.request()
        await settle()
        reloads.request()
        gated.finish()
        await settle()
        reloads.request()  # arrives while the second reload reads the config: too late
        gated.finish()  # for it, so a third one must follow
        await settle()
        assert gated.started == [1, 2, 3]

    run(test)


def test_reloads_start_at_least_the_gap_apart() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async def main() -> None:
        done: list[float] = []

        async def reload() -> None:
            done.append(now[0])
            now[0] += 0.25  # reading the config takes a while

        reloads = Reloads(reload, gap=1.0, clock=lambda: now[0], sleep=sleep)
        task = asyncio.ensure_future(reloads.run())
        try:
            reloads.request()
            await settle()
            reloads.request()
            await settle()
            now[0] += 5  # long after: no wait
            reloads.request()
            await settle()
        finally:
            task.cancel()
        assert done == [100.0, 101.0, 106.25]
        assert waits == [0.75]

    asyncio.run(main())


def test_a_reload_that_fails_does_not_stop_the_next() -> None:
    calls: list[int] = []

    async def main() -> None:
        async def reload() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug in a reload")

        reloads = Reloads(reload, gap=0.0)
        task = asyncio.ensure_future(reloads.run())
        try:
            reloads.request()
            await settle()
            reloads.request()
            await settle()
        finally:
            task.cancel()

    asyncio.run(main())
    assert len(calls) == 2
