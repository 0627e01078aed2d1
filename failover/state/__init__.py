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

__all__ = ["Event", "Override", "StateStore", "open_state"]


def open_state(cfg: Config) -> StateStore:
    """The store the config names (today: a SQLite file at `controller.state`)."""
    from failover.state.sqlite import SqliteState

    return SqliteState(cfg.path(cfg.controller.state))
