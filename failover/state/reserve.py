"""Disk space set aside beside the SQLite state, so that a drain or a pin can always be
undone: on a full disk a restore or an unpin gives the reserve back to the filesystem
and is written in the space it frees. The reserve is made again once there is room.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RESERVE_BYTES = 256 * 1024  # a restore writes about 20 KiB (its pages in the WAL)


def reserve_path(state: Path) -> Path:
    return state.with_name(state.name + ".reserve")


class Reserve:
    """The reserve of one state file (`<state>.reserve`, 0600)."""

    def __init__(self, state: Path) -> None:
        self.path = reserve_path(state)

    def keep(self) -> None:
        """Make the reserve when it is missing or short. Best effort: on a full or
        read-only disk it is left for a later call (one stat when it is there)."""
        try:
            if os.stat(self.path).st_size >= RESERVE_BYTES:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:
            # a reserve it could not make whole takes the last free space from the state
            # itself: none rather than part of one
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the reserve back to the filesystem; False when there was none."""
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True
