"""A vantage's view: its leaf checks' states, compact, as a fleet member publishes them.

Only what the state machines concluded travels (status, since when, why, smoothed
latency), not every probe result: a view changes when a check flips at that vantage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from failover.health import CheckState


def encode(states: Mapping[tuple[str, str], CheckState]) -> dict[str, list[Any]]:
    return {f"{e}|{c}": [int(s.healthy), s.since, s.reason[:200],
                         None if s.latency_ms is None else round(s.latency_ms, 1)]
            for (e, c), s in states.items()}


def decode(checks: Mapping[str, Any]) -> dict[tuple[str, str], CheckState]:
    out = {}
    for key, item in checks.items():
        endpoint, _, check = key.rpartition("|")
        healthy, since, reason, latency = item
        out[(endpoint, check)] = CheckState(bool(healthy), since, 0, str(reason), (), latency)
    return out


def odd_ones(views: Mapping[str, Mapping[tuple[str, str], CheckState]],
             result: Mapping[str, bool]) -> dict[str, list[str]]:
    """Per vantage, the endpoints it sees otherwise than the fleet concluded (`result`:
    endpoint -> healthy) where it says down and the result is up: the vantage that is
    cut off, not the endpoint. Only vantages that disagree are listed."""
    out: dict[str, list[str]] = {}
    for vantage, states in views.items():
        down = sorted({e for (e, _), s in states.items() if not s.healthy and result.get(e)})
        if down:
            out[vantage] = down
    return out
