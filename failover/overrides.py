"""Operator actions: drain or restore a region, pin or unpin a record. Kept in state.

Each action is checked against the state and made a change (`OverrideChange`), then
`commit` writes it with its history line in one transaction: an override is in the
state with the line that says who and why, or neither is.
"""

from __future__ import annotations

import getpass
import os
import socket
from typing import TYPE_CHECKING

from failover.errors import InputError
from failover.health import initial_snapshot
from failover.state.store import (
    Event,
    Override,
    OverrideChange,
    OverrideKind,
    StateStore,
    as_overrides,
)
from policies import region_views
from policies.model import NETWORK_SEP

if TYPE_CHECKING:
    from failover.config import Config

# how a refused change is forced, in the words of the command line and of the API
CLI_FORCE = "use --force"
API_FORCE = 'send "force": true'


def who() -> str:
    """Who acts: user@host (FAILOVER_ACTOR overrides it, e.g. in CI or chat-ops)."""
    if os.environ.get("FAILOVER_ACTOR"):
        return os.environ["FAILOVER_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def stranded(cfg: Config, state: StateStore, drained: set[str], now: float,
             network: str | None = None) -> list[str]:
    """Records that would have no healthy, undrained region with `drained` drained (for
    one client network, or every one), named with the network when there are several."""
    snapshot = state.load_health() or initial_snapshot(cfg, now)
    everyone = as_overrides(state.overrides(), now)
    out = []
    for net in ([network] if network else cfg.network_names) or [""]:
        ov = everyone.for_network(net) if net else everyone
        ov = type(ov)(drained=frozenset(ov.drained | drained), pinned=ov.pinned)
        for rec in cfg.records:
            seen = cfg.record_for(rec, net) if net else rec
            views = region_views(cfg, seen, snapshot, ov)
            if drained & set(views) and rec.name not in ov.pinned and not any(
                    v.usable for v in views.values()):
                out.append(f"{rec.name} {rec.type}" + (f" ({net})" if net else ""))
    return out


def scoped(cfg: Config, target: str, network: str | None) -> str:
    """An override's target for one client network (`us-east-1@europe`), or for every
    one. Raises InputError for a network the config does not have."""
    if network is None:
        return target
    if network not in cfg.networks:
        known = ", ".join(cfg.networks) or "none: the config defines no networks"
        raise InputError(f"unknown network '{network}' (networks: {known})")
    return f"{target}{NETWORK_SEP}{network}"


def _for(network: str | None) -> str:
    return f" for network {network}" if network else ""


def commit(state: StateStore, change: OverrideChange) -> str:
    """Write `change` and its history line (both or neither); what to tell the operator.
    Raises InputError when the override to clear changed since it was read, and
    FailoverError when the store does not take the write (then nothing was written)."""
    if not state.change_override(change):
        assert change.clear is not None
        raise InputError(f"nothing done: the {change.clear.kind} of {change.clear.target} "
                         "changed while this ran; see `failover status`")
    return change.summary


def drain(cfg: Config, state: StateStore, region: str, *, why: str, now: float,
          force: bool = False, expires: float | None = None,
          actor: str | None = None, forcing: str = CLI_FORCE,
          network: str | None = None) -> OverrideChange:
    """The change that forces a region out of every answer, or out of one client
    network's (`commit` writes it). Raises InputError for an unknown region or network,
    or when a record would be left with no healthy region and `force` is not set
    (saying how to force it: `forcing`)."""
    _region(cfg, region)
    _reason(why)
    target = scoped(cfg, region, network)
    left = stranded(cfg, state, {region}, now, network)
    if left and not force:
        raise InputError(f"draining {region}{_for(network)} would leave {', '.join(left)} "
                         f"with no healthy region (they would fail open); {forcing} to "
                         "drain anyway")
    actor = actor or who()
    message = f"{region} drained{_for(network)}" + (
        f" (forced: {', '.join(left)} fail open)" if left else "")
    return OverrideChange(message, _event(now, target, message, actor, why, expires,
                                          force and bool(left)),
                          set=Override("drain", target, region, actor, why, now, expires))


def restore(cfg: Config, state: StateStore, region: str, *, now: float | None = None,
            actor: str | None = None, why: str = "",
            network: str | None = None) -> OverrideChange:
    """The change that undoes a drain (of every network, or of one). Raises InputError
    when the region is not drained so."""
    _region(cfg, region)
    return _undo(state, "drain", scoped(cfg, region, network), "drained", "restored", now,
                 actor, why)


def pin(cfg: Config, state: StateStore, name: str, region: str, *, why: str, now: float,
        expires: float | None = None, actor: str | None = None,
        force: bool = False, forcing: str = CLI_FORCE,
        network: str | None = None) -> OverrideChange:
    """The change that forces one record name's answer (for every client network, or
    one) to one region, whatever its health. Raises InputError for an unknown name,
    region or network, and (without `force`) when the region is unhealthy or drained for
    that name: a pin there would send traffic to an outage (saying how to force it:
    `forcing`)."""
    name = record_name(cfg, name)
    records = [r for r in cfg.records if r.name == name]
    _region(cfg, region)
    _reason(why)
    target = scoped(cfg, name, network)
    if not any(region in cfg.record_regions(r) for r in records):
        raise InputError(f"{region} is not a region of {name}")
    if not force:
        snapshot = state.load_health() or initial_snapshot(cfg, now)
        ov = as_overrides(state.overrides(), now)
        ov = ov.for_network(network or (cfg.network_names or ("",))[-1]) if ov.scoped else ov
        for rec in records:
            view = region_views(cfg, rec, snapshot, ov).get(region)
            if view is not None and not view.healthy:
                raise InputError(f"{region} is unhealthy for {name} ({view.reason}); "
                                 f"{forcing} to pin it there anyway")
            if view is not None and view.drained:
                raise InputError(f"{region} is drained; {forcing} to pin {name} there "
                                 "anyway")
    actor = actor or who()
    message = f"{name} pinned to {region}{_for(network)}" + (" (forced)" if force else "")
    return OverrideChange(message, _event(now, target, message, actor, why, expires, force),
                          set=Override("pin", target, region, actor, why, now, expires))


def unpin(cfg: Config, state: StateStore, name: str, *, now: float | None = None,
          actor: str | None = None, why: str = "",
          network: str | None = None) -> OverrideChange:
    """The change that undoes a pin (of every network, or of one). Raises InputError
    when the name is not pinned so."""
    return _undo(state, "pin", scoped(cfg, record_name(cfg, name), network), "pinned",
                 "unpinned", now, actor, why)


def _undo(state: StateStore, kind: OverrideKind, target: str, was: str, done: str,
          now: float | None, actor: str | None, why: str) -> OverrideChange:
    held = [o for o in state.overrides() if o.kind == kind]
    found = next((o for o in held if o.target == target), None)
    if found is None:
        raise InputError(f"{target} is not {was} ({was}: "
                         f"{', '.join(o.target for o in held) or 'none'})")
    message = f"{target} {done}"
    return OverrideChange(message, _event(now, target, message, actor or who(), _reason(why),
                                          None, False), clear=found)


def expired(in_force: frozenset[tuple[str, str, float]], overrides: list[Override],
            now: float) -> list[Event]:
    """History lines for the overrides that were in force (`in_force`: kind, target and
    set-at of each) and ran out by `now`: "drain of R expired (set by W at T: why)"."""
    from policies.reasons import clock

    out = []
    for o in overrides:
        if o.active(now) or (o.kind, o.target, o.at) not in in_force:
            continue
        what = (f"drain of {o.region}" if o.kind == "drain" else
                f"pin of {o.target} to {o.region}" if o.kind == "pin" else
                f"drill of {o.region}")
        out.append(Event(now, "override", o.target, f"{what} expired (set by {o.who} at "
                         f"{clock(o.at)}Z{': ' + o.why if o.why else ''})",
                         {"kind": o.kind, "target": o.target, "region": o.region,
                          "who": o.who, "at": o.at, "expires": o.expires, "expired": True}))
    return out


def record_name(cfg: Config, name: str) -> str:
    """A record's absolute name from what an operator typed: absolute, or relative to
    the zone (`api` in example.com. is api.example.com.). Raises InputError, with the
    closest names, for a name the config has no record of."""
    import difflib

    from failover.records import absolute_name

    known = cfg.memo("record_names", lambda: {r.name for r in cfg.records})
    candidates = [absolute_name(name)]
    if not name.endswith("."):
        for spec in cfg.zone_specs:
            candidates.insert(0, absolute_name(f"{name}.{spec.zone}"))
    for c in candidates:
        if c in known:
            return c
    close = difflib.get_close_matches(candidates[0], sorted(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else (
        f" (records: {', '.join(sorted(known)[:10])}{', ...' if len(known) > 10 else ''})")
    raise InputError(f"no record named {name}{hint}")


REASON_LIMIT = 1024  # characters: a reason is a sentence, kept in every status and history


def _reason(why: str) -> str:
    if len(why) > REASON_LIMIT:
        raise InputError(f"the reason is {len(why)} characters; at most {REASON_LIMIT}")
    return why


def _event(now: float | None, subject: str, message: str, actor: str, why: str,
           expires: float | None, forced: bool) -> Event:
    """The history line of an operator's change: who, why and until when."""
    import time

    text = f"{message} by {actor}" + (f": {why}" if why else "")
    if expires is not None:
        text += f" (until {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(expires))})"
    return Event(now if now is not None else time.time(), "override", subject, text,
                 {"actor": actor, "reason": why, "expires": expires, "forced": forced})


def _region(cfg: Config, region: str) -> None:
    if region not in cfg.regions:
        raise InputError(f"unknown region '{region}' (regions: {', '.join(cfg.regions)})")
