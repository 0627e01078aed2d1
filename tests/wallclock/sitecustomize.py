"""Loaded at start-up by a controller under test (tests/wallclock on PYTHONPATH): the wall
clock as Python reads it (time.time, time.time_ns) is shifted by the seconds written in
the file FAILOVER_TEST_WALL_SHIFT names, read again every 50 ms, as an NTP step or an
operator's `date -s` shifts it. The monotonic clock is left alone, as the kernel does.
"""

import os
import time

_path = os.environ.get("FAILOVER_TEST_WALL_SHIFT")

if _path:
    _real_time, _real_time_ns, _monotonic = time.time, time.time_ns, time.monotonic
    _shift = {"seconds": 0.0, "read_at": float("-inf")}

    def _seconds() -> float:
        now = _monotonic()
        if now - _shift["read_at"] >= 0.05:
            try:
                with open(_path) as f:
                    _shift["seconds"] = float(f.read().strip() or 0)
            except (OSError, ValueError):
                pass
            _shift["read_at"] = now
        return _shift["seconds"]

    time.time = lambda: _real_time() + _seconds()
    time.time_ns = lambda: _real_time_ns() + int(_seconds() * 1e9)
