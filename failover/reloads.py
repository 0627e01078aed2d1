"""Config reloads asked for by SIGHUP, coalesced: one in flight, at most one queued.

A burst of signals (a config tool sending one per file it touches, a script gone wrong:
300 at 100/s) made one reload per signal, each restarting the probes and reading the
zone again, and delayed a failover by seconds. A signal now asks for a reload: when
none is running it starts at once; while one runs, or less than `gap` seconds after the
last one started, it is queued, and every signal meanwhile joins the queued one. The
queued reload reads the config when it starts, after the last signal that joined it:
the config written before the last signal is the one in force.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("failover")

RELOAD_GAP = 1.0  # seconds: the least time between the starts of two reloads


class Reloads:
    """Reloads asked for (`request`, from a signal handler on the loop), performed one at
    a time by `run`."""

    def __init__(self, reload: Callable[[], Awaitable[None]], gap: float = RELOAD_GAP,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._reload = reload
        self.gap, self.clock, self.sleep = gap, clock, sleep
        self._queued = asyncio.Event()
        self.requested = 0  # signals received
        self.performed = 0  # reloads started
        self.covering = 0  # the signals the reload in flight (or the last) answers

    def request(self) -> None:
        """Ask for a reload: started at once when none runs, else queued (joining the
        one already queued)."""
        self.requested += 1
        self._queued.set()

    async def run(self) -> None:
        """Perform the reloads asked for, one at a time, until cancelled. A reload that
        raises is logged; the next request is served all the same."""
        started: float | None = None
        answered = 0  # signals received before the last reload started
        while True:
            await self._queued.wait()
            if started is not None and (wait := started + self.gap - self.clock()) > 0:
                await self.sleep(wait)  # signals meanwhile join this queued reload
            self._queued.clear()  # from here on, a signal queues the next one
            started = self.clock()
            self.covering, answered = self.requested - answered, self.requested
            self.performed += 1
            try:
                await self._reload()
            except Exception as exc:
                log.exception("event=reload_failed error=%r: the running config stays",
                              str(exc))
