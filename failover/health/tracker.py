"""Route 53's health state machine for one check seen from one vantage point. Pure.

A status flips only after `failure_threshold` consecutive opposite results, in both
directions. New checks start healthy. Latency is smoothed with an EWMA.
"""

from __future__ import annotations

from dataclasses import dataclass

RECENT = 5  # results kept per check, newest last, for status and history
LATENCY_ALPHA = 0.3  # EWMA weight of the newest latency sample


@dataclass(frozen=True, slots=True)
class Outcome:
    """One probe result as health keeps it."""

    at: float
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CheckState:
    """A check's raw status (before inversion) and what led to it.

    `streak` counts consecutive results opposite to `healthy`; `since` is when the status
    last flipped (None: never, it holds since start).
    """

    healthy: bool = True
    since: float | None = None
    streak: int = 0
    reason: str = "not yet checked: new checks start healthy"
    recent: tuple[Outcome, ...] = ()
    latency_ms: float | None = None


def observe(state: CheckState, ok: bool, reason: str, at: float, threshold: int,
            latency_ms: float | None = None) -> CheckState:
    """The state after one more probe result.

    `threshold` is the failure threshold (1-10); `at` the result's time in seconds.
    """
    recent = (*state.recent[-(RECENT - 1):], Outcome(at, ok, reason))
    latency = state.latency_ms
    if ok and latency_ms is not None:
        latency = latency_ms if latency is None else (
            LATENCY_ALPHA * latency_ms + (1 - LATENCY_ALPHA) * latency)
    if ok == state.healthy:
        # before any flip the latest result says more than "new checks start healthy"
        why = state.reason if state.since is not None else reason
        return CheckState(state.healthy, state.since, 0, why, recent, latency)
    streak = state.streak + 1
    if streak < threshold:
        return CheckState(state.healthy, state.since, streak, state.reason, recent, latency)
    what = ("success" if ok else "failure") + ("" if streak == 1 else ("es" if ok else "s"))
    return CheckState(ok, at, 0, f"after {streak} {what}: {reason}", recent, latency)


def vantage_healthy(healthy: int, total: int, percent: int) -> bool:
    """Several vantage points agree: healthy when more than `percent`% of them say so.

    Integer maths, as Route 53 (which uses 18%): with no vantage reporting, healthy.
    """
    if total == 0:
        return True
    return healthy * 100 > percent * total
