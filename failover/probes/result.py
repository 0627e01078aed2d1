"""What one probe observed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome.

    `at` is when the probe started (seconds since the epoch); `connect_ms` the TCP
    connect time; `first_byte_ms` the time from connect to the response status line
    (HTTP checks); `reason` a sentence for people ("status 503", "connection refused").
    """

    ok: bool
    reason: str
    at: float
    connect_ms: float | None = None
    first_byte_ms: float | None = None

    @property
    def latency_ms(self) -> float | None:
        """The latency that ranks regions: to the first byte, else to connect."""
        if self.connect_ms is None:
            return None
        return self.connect_ms + (self.first_byte_ms or 0.0)
