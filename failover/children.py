"""Child processes the product starts (named, endpoint fleets, a zone's reload and check
commands): what they see of our environment, and stopping them by their PID."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Collection
from typing import Any

# What a command we run sees of the controller's environment unless its config names
# more: enough to find programs, write in the right locale and time zone. Never the
# rest: the API token, TSIG secrets, AWS keys and etcd passwords live there.
BASE_ENVIRONMENT = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ"})


def environment(allowed: Collection[str] = ()) -> dict[str, str]:
    """The environment for a command the product runs: this process's PATH, HOME, TZ,
    locale (LANG, LANGUAGE, LC_*) and the variables named in `allowed`, nothing else."""
    keep = BASE_ENVIRONMENT | set(allowed)
    return {name: value for name, value in os.environ.items()
            if name in keep or name.startswith("LC_")}


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
