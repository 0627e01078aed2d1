"""What the status page and text `status` say about /status data, in the same words:
a region's state (healthy, partly healthy, unhealthy, drained), the records answered
without health to go on (every region out), and the zones.

Pure: data in (the JSON-ready dicts of /status), words out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SHOWN = 3  # records named in a summary line; the rest are counted

# a record's basis when no region was usable, and what the name answers then
_ALL_OUT = {"fail_open": "failing open", "last_known_good": "serving the last known good answer",
            "closed": "answering nothing (fail mode closed)"}


def region_state(region: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, words) for a region: kind is drained, healthy, partly or unhealthy; a
    region with some endpoints down is "partly healthy" and names them."""
    if region.get("drained"):
        return "drained", "DRAINED"
    endpoints = region.get("endpoints") or []
    down = [ep["id"] for ep in endpoints if not ep.get("healthy", True)]
    if not region.get("healthy", True):
        return "unhealthy", "UNHEALTHY"
    if down:
        return "partly", f"partly healthy: {', '.join(down)} down"
    return "healthy", "healthy"


def all_out(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per fail mode in force: the records whose every region is out, and what
    they answer instead (fail open, last known good, nothing). Empty when none is."""
    by_basis: dict[str, list[str]] = {}
    for r in records:
        if r.get("basis") in _ALL_OUT:
            by_basis.setdefault(r["basis"], []).append(f"{r['name']} {r['type']}")
    out = []
    for basis, names in by_basis.items():
        shown = ", ".join(names[:SHOWN]) + (
            f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
        out.append(f"every region of {shown} is out: {_ALL_OUT[basis]}")
    return out


def zones(status: Mapping[str, Any]) -> str:
    """Every zone /status covers, comma-separated (the one zone for the one-zone form)."""
    return ", ".join(z["zone"] for z in status.get("zones") or []) or str(status.get("zone", ""))
