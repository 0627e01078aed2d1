"""State: operator overrides, the latest health snapshot and decisions, and the event history.

`StateStore` is the interface; SQLite (WAL) is the embedded default for one controller.
A distributed store will sit behind the same interface, so nothing outside this package
may assume a local file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failover.state.store import Event, Override, StateStore

if TYPE_CHECKING:
    from failover.config import Config

__all__ = ["Event", "Override", "StateStore", "controller_pid", "open_state"]


def open_state(cfg: Config, exclusive: bool = False) -> StateStore:
    """The store the config names (today: a SQLite file at `controller.state`); with
    `exclusive` (the controller) it is held against a second controller."""
    from failover.state.sqlite import SqliteState

    return SqliteState(cfg.path(cfg.controller.state), exclusive=exclusive)


def controller_pid(cfg: Config) -> int | None:
    """The PID of the controller running on the config's state, None when none is."""
    from failover.state.sqlite import holder

    return holder(cfg.path(cfg.controller.state))
