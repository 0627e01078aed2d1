"""Child processes the product starts (named, endpoint fleets): stopped by their PID."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (after SIGCONT, in case it was stopped), then SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
