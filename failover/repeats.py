"""Repeated errors said once, then at growing intervals with a count (a DNS server down
for an hour is a handful of log lines and history events, not one per tick)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Run:
    message: str
    since: float
    count: int
    said_at: float
    gap: float


class Repeats:
    """Per key (a category such as "dns"): whether an error is to be said now."""

    def __init__(self, first: float = 10.0, cap: float = 600.0) -> None:
        self.first, self.cap = first, cap
        self._runs: dict[str, _Run] = {}

    def say(self, key: str, message: str, now: float) -> str | None:
        """The text to log for this occurrence, or None to stay quiet. A new message is
        said at once; the same one again after 10 s, 20 s, 40 s... (at most 10 min),
        with how often it repeated meanwhile."""
        run = self._runs.get(key)
        if run is None or run.message != message:
            self._runs[key] = _Run(message, now, 1, now, self.first)
            return message
        run.count += 1
        if now - run.said_at < run.gap:
            return None
        run.said_at, run.gap = now, min(run.gap * 2, self.cap)
        return f"{message} (repeated {run.count} times in {now - run.since:.0f} s)"

    def since(self, key: str) -> float | None:
        """When the current run of errors of `key` began."""
        run = self._runs.get(key)
        return run.since if run is not None else None

    def clear(self, key: str) -> int:
        """End the run of `key`; how many errors it had (0: none)."""
        run = self._runs.pop(key, None)
        return run.count if run is not None else 0
