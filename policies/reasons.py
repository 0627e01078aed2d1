"""Sentences that explain decisions to people: status, history and plan show them."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from policies.model import RegionView


def clock(ts: float) -> str:
    """A timestamp as HH:MM:SS in UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def describe(view: RegionView) -> str:
    """Why a region does not answer: drained, or unhealthy since when and why."""
    if view.drained:
        return f"{view.name} drained by operator"
    if view.healthy:
        return f"{view.name} healthy"
    text = f"{view.name} unhealthy"
    if view.since is not None:
        text += f" since {clock(view.since)}"
    if view.reason:
        text += (" " if view.reason.startswith("after ") else ": ") + view.reason
    return text


def names(regions: Iterable[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    items = list(regions)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def shares_text(shares: Mapping[str, float]) -> str:
    """`us-east-1 70%, eu-west-1 30%`."""
    return ", ".join(f"{r} {s * 100:.0f}%" for r, s in shares.items())


def serve(regions: Iterable[str], why: str) -> str:
    """`eu-west-1 serves: why` / `a and b serve: why`."""
    items = list(regions)
    return f"{names(items)} {'serves' if len(items) == 1 else 'serve'}: {why}"
