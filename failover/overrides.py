"""Operator actions: drain or restore a region, pin or unpin a record. Kept in state."""

from __future__ import annotations

import getpass
import os
import socket
from typing import TYPE_CHECKING

from failover.errors import InputError
from failover.health import initial_snapshot
from failover.state.store import Override, StateStore, as_overrides
from policies import region_views

if TYPE_CHECKING:
    from failover.config import Config


def who() -> str:
    """Who acts: user@host (FAILOVER_ACTOR overrides it, e.g. in CI or chat-ops)."""
    if os.environ.get("FAILOVER_ACTOR"):
        return os.environ["FAILOVER_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def stranded(cfg: Config, state: StateStore, drained: set[str], now: float) -> list[str]:
    """Records that would have no healthy, undrained region with `drained` drained."""
    snapshot = state.load_health() or initial_snapshot(cfg, now)
    ov = as_overrides(state.overrides(), now)
    ov = type(ov)(drained=frozenset(ov.drained | drained), pinned=ov.pinned)
    out = []
    for rec in cfg.records:
        views = region_views(cfg, rec, snapshot, ov)
        if drained & set(views) and rec.name not in ov.pinned and not any(
                v.usable for v in views.values()):
            out.append(f"{rec.name} {rec.type}")
    return out


def drain(cfg: Config, state: StateStore, region: str, *, why: str, now: float,
          force: bool = False, expires: float | None = None, actor: str | None = None) -> str:
    """Force a region out of every answer. Raises InputError for an unknown region, or
    when a record would be left with no healthy region and `force` is not set."""
    _region(cfg, region)
    left = stranded(cfg, state, {region}, now)
    if left and not force:
        raise InputError(f"draining {region} would leave {', '.join(left)} with no healthy "
                         "region (they would fail open); use --force to drain anyway")
    state.set_override(Override("drain", region, region, actor or who(), why, now, expires))
    return f"{region} drained" + (f" (forced: {', '.join(left)} fail open)" if left else "")


def restore(cfg: Config, state: StateStore, region: str) -> str:
    """Undo a drain."""
    _region(cfg, region)
    if not state.clear_override("drain", region):
        return f"{region} was not drained"
    return f"{region} restored"


def pin(cfg: Config, state: StateStore, name: str, region: str, *, why: str, now: float,
        expires: float | None = None, actor: str | None = None) -> str:
    """Force one record name's answer to one region, whatever its health."""
    from failover.records import absolute_name

    name = absolute_name(name)
    records = [r for r in cfg.records if r.name == name]
    if not records:
        raise InputError(f"no record named {name} (records: "
                         f"{', '.join(sorted({r.name for r in cfg.records}))})")
    _region(cfg, region)
    if not any(region in cfg.record_regions(r) for r in records):
        raise InputError(f"{region} is not a region of {name}")
    state.set_override(Override("pin", name, region, actor or who(), why, now, expires))
    return f"{name} pinned to {region}"


def unpin(cfg: Config, state: StateStore, name: str) -> str:
    """Undo a pin."""
    from failover.records import absolute_name

    name = absolute_name(name)
    if not state.clear_override("pin", name):
        return f"{name} was not pinned"
    return f"{name} unpinned"


def _region(cfg: Config, region: str) -> None:
    if region not in cfg.regions:
        raise InputError(f"unknown region '{region}' (regions: {', '.join(cfg.regions)})")
