"""Durations as operators write them (`30s`, `15m`, `2h30m`, `1d`, `1w`) and the cap on
how long an override may last."""

from __future__ import annotations

import math
import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_EXPIRY = 366 * 86400.0  # an override expires within a year, or never
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: str) -> float | None:
    """Seconds of `2h30m`-style text; None when it is not one."""
    text = value.strip().lower()
    if not text or _PART.sub("", text):
        return None
    seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
    return seconds if math.isfinite(seconds) else None


def expiry(duration: str | None, expires: float | None, now: float) -> float | None:
    """When an override asked for `duration` (or until `expires`, epoch seconds) ends.

    Raises ValueError naming what is wrong: not a duration, not in the future, longer
    than a year (drop the expiry to make it last until undone), or both given.
    """
    if duration is not None and expires is not None:
        raise ValueError("give a duration or an expiry time, not both")
    if duration is not None:
        seconds = parse_duration(duration)
        if seconds is None or seconds <= 0:
            raise ValueError(f"'{duration}': expected a duration like 30m, 2h, 2h30m, 1d")
        expires = now + seconds
    if expires is None:
        return None
    if not math.isfinite(expires) or expires <= now:
        raise ValueError("the expiry must be in the future")
    if expires - now > MAX_EXPIRY:
        raise ValueError("an expiry is at most a year away (leave it out to keep the "
                         "override until it is undone)")
    return expires
