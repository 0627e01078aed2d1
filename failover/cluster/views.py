"""A vantage's view: its leaf checks' states, compact, as a fleet member publishes them.

Only what the state machines concluded travels (status, since when, why, smoothed
latency), not every probe result: a view changes when a check flips at that vantage.
A view is read from etcd, where anyone who can write under the prefix can put anything:
`parse` takes a view whole or refuses it with the reason, never half of one and never
with an exception other than BadView.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from failover.health import CheckState

MAX_REASON = 200  # characters of a check's reason a view carries


class BadView(ValueError):
    """A stored view that cannot be read; the message says why (never the whole value)."""


@dataclass(frozen=True)
class View:
    """One vantage's view as published: whether it votes yet, who published it, and its
    leaf checks' states by (endpoint, check)."""

    ready: bool
    host: str | None = None
    pid: int | None = None
    at: float | None = None
    checks: Mapping[tuple[str, str], CheckState] = field(default_factory=dict)
    dns: bool | None = None  # whether it reaches the DNS server (None: cannot tell)


def encode(states: Mapping[tuple[str, str], CheckState]) -> dict[str, list[Any]]:
    return {f"{e}|{c}": [int(s.healthy), s.since, s.reason[:MAX_REASON],
                         None if s.latency_ms is None else round(s.latency_ms, 1)]
            for (e, c), s in states.items()}


def parse(raw: bytes) -> View:
    """A view from its stored JSON. Raises BadView naming what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadView(f"not JSON: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise BadView(f"not a JSON object but {type(data).__name__}")
    ready = data.get("ready", False)
    host, pid, at = data.get("host"), data.get("pid"), data.get("at")
    if not isinstance(ready, bool):
        raise BadView("ready: not true or false")
    if host is not None and not isinstance(host, str):
        raise BadView("host: not a string")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
        raise BadView("pid: not an integer")
    if at is not None and not _time(at):
        raise BadView("at: not a time")
    dns = data.get("dns")
    if dns is not None and not isinstance(dns, bool):
        raise BadView("dns: not true, false or null")
    return View(ready, host and host[:255], pid, at, decode(data.get("checks", {})), dns)


def decode(checks: Any) -> dict[tuple[str, str], CheckState]:
    """The leaf states of a view's `checks`. Raises BadView at the first entry that is not
    `"endpoint|check": [healthy 0/1, since or null, reason, latency ms or null]`."""
    if not isinstance(checks, dict):
        raise BadView("checks: not a JSON object")
    out = {}
    for key, item in checks.items():
        endpoint, bar, check = key.rpartition("|")
        if not (bar and endpoint and check):
            raise BadView(f"checks: key {key[:100]!r} is not endpoint|check")
        if not isinstance(item, list) or len(item) != 4:
            raise BadView(f"checks: {key[:100]!r} is not [healthy, since, reason, latency]")
        healthy, since, reason, latency = item
        if healthy not in (0, 1) or isinstance(healthy, float):
            raise BadView(f"checks: {key[:100]!r}: healthy is not 0 or 1")
        if since is not None and not _time(since):
            raise BadView(f"checks: {key[:100]!r}: since is not a time")
        if not isinstance(reason, str):
            raise BadView(f"checks: {key[:100]!r}: reason is not a string")
        if latency is not None and not (_time(latency) and latency >= 0):
            raise BadView(f"checks: {key[:100]!r}: latency is not a number of ms")
        out[(endpoint, check)] = CheckState(bool(healthy), None if since is None else
                                            float(since), 0, reason[:MAX_REASON], (),
                                            None if latency is None else float(latency))
    return out


def _time(value: Any) -> bool:
    """A finite number (JSON gives int or float; true and false are not numbers here)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past what a float holds
        return False


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
