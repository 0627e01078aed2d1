"""`failover probe`: run a config's checks once or on schedule and report what they see."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.health import HealthBoard
from failover.probes.result import ProbeResult
from failover.probes.scheduler import Scheduler, probe_all
from failover.probes.target import ProbeTarget, targets_for

if TYPE_CHECKING:
    from failover.config import Config


def _status(board: HealthBoard, target: ProbeTarget, threshold: int) -> str:
    health = board.snapshot(0.0).endpoints[target.endpoint]
    state = board.state(target.endpoint, target.check)
    text = "healthy" if health.healthy else "unhealthy"
    if state.streak:
        what = "successes" if not state.healthy else "failures"
        text += f" ({state.streak}/{threshold} {what})"
    return text


def latency_words(ok: bool, reason: str, latency_ms: float | None) -> str:
    """The latency a person reads: a probe that timed out spent its timeout, not the
    connect time its result carries, so it reads "timeout"; "" when none was measured."""
    if not ok and reason.startswith("timeout"):
        return "timeout"
    return "" if latency_ms is None else f"{latency_ms:.1f} ms"


def _row(board: HealthBoard, cfg: Config, t: ProbeTarget, r: ProbeResult) -> dict[str, Any]:
    return {"endpoint": t.endpoint, "check": t.check, "target": t.where, "ok": r.ok,
            "reason": r.reason, "at": r.at, "connect_ms": r.connect_ms,
            "first_byte_ms": r.first_byte_ms, "latency_ms": r.latency_ms,
            "status": _status(board, t, cfg.checks[t.check].failure_threshold)}


async def probe_once(cfg: Config) -> list[dict[str, Any]]:
    """Probe every target of `cfg` once; one row per target, with the resulting status."""
    board = HealthBoard(cfg)
    rows = []
    for t, r in await probe_all(targets_for(cfg)):
        board.observe(t.endpoint, t.check, r.ok, r.reason, r.at, r.latency_ms)
        rows.append(_row(board, cfg, t, r))
    return rows


async def watch(cfg: Config, duration: float | None, emit: Callable[[str], None],
                as_json: bool) -> None:
    """Probe on schedule until `duration` passes or SIGINT/SIGTERM; emit results and flips."""
    board = HealthBoard(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_result(t: ProbeTarget, r: ProbeResult) -> None:
        flip = board.observe(t.endpoint, t.check, r.ok, r.reason, r.at, r.latency_ms)
        row = _row(board, cfg, t, r)
        if as_json:
            emit(json.dumps({"type": "result", **row}))
        else:
            clock = time.strftime("%H:%M:%S", time.gmtime(r.at))
            lat = latency_words(r.ok, r.reason, r.latency_ms)
            emit(f"{clock} {t.endpoint} {t.check} {'ok' if r.ok else 'FAIL'}"
                 f"{' ' + lat if lat else ''}: "
                 f"{r.reason} [{row['status']}]")
        if flip is not None:
            state = "healthy" if flip.health.healthy else "unhealthy"
            if as_json:
                emit(json.dumps({"type": "transition", "endpoint": flip.endpoint,
                                 "healthy": flip.health.healthy, "at": flip.health.since,
                                 "reason": flip.health.reason}))
            else:
                emit(f"** {flip.endpoint} is now {state}: {flip.health.reason}")

    try:
        await Scheduler(targets_for(cfg), on_result).run(duration=duration, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
