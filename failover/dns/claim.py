"""One writer per zone without a fleet: a controller running alone takes the zone's fence.

A fleet's leader fences its writes with the epoch etcd gives it. A controller running
alone has no etcd, so two of them on one zone (separate state files, or hosts) would
each "correct" the other at every refresh, forever. So it takes the same fence (the TXT
`_failover-leader.<zone>`, per owner_id) under an identity of its own (host and state
file), an epoch above any the fence held (milliseconds of the clock) and a renewal stamp
it refreshes every RENEW_EVERY. Every write then requires that exact value (RFC 2136
prerequisite; Route 53: delete and create it in the same batch), so once another
controller takes the zone over, this one's writes are refused and it stops.

A second controller that finds the fence held by another identity, renewed within
STALE_AFTER, refuses to write (exit 2 at start); `--take-over` takes it explicitly, and a
fence whose holder stopped renewing long ago is taken with a log line.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.dns import leaves
from failover.dns.base import fence_fields, fence_name
from failover.errors import InputError

if TYPE_CHECKING:
    from failover.dns.base import Adapter

RENEW_EVERY = 300.0  # seconds between renewals of a single controller's fence stamp
STALE_AFTER = 900.0  # a fence not renewed for this long was left by a stopped controller


class ZoneHeld(InputError):
    """Another controller holds the zone's fence (exit 2 at start)."""


@dataclass(frozen=True)
class Claim:
    """What taking the fences needs: the epoch to write under, its renewal stamp (the
    one found when every fence is this controller's already: a restart writes nothing),
    what to say."""

    epoch: int
    renewed: int
    notes: tuple[str, ...] = ()


def identity(state_path: Path) -> str:
    """This controller's name in the fence: its host and its state file."""
    raw = f"{socket.gethostname()}:{state_path}"
    return re.sub(r"[^A-Za-z0-9._/:-]", "_", raw)[-200:]


def zone_adapters(adapter: Adapter) -> list[Any]:
    """Each zone's adapter that can hold a fence (RFC 2136 servers, Route 53)."""
    return [a for a in leaves(adapter)
            if hasattr(a, "read_fence")]


def claim(adapter: Adapter, me: str, owner: str, *, take_over: bool, now: float) -> Claim:
    """Read every zone's fence and decide whether this controller may take it.

    Returns the epoch to write under (above any held) and what to log. Raises ZoneHeld
    when another controller renewed its fence within STALE_AFTER and `take_over` is
    not given; DnsError when a fence cannot be read.
    """
    epoch, notes = int(now * 1000), []
    own: set[tuple[str, str]] = set()  # (epoch, renewed) of fences this controller holds
    zones = zone_adapters(adapter)
    for a in zones:
        a.fence_owner = owner
        values = a.read_fence()
        if not values:
            continue
        held = fence_fields(values)
        if held.get("epoch", "").isdigit():
            epoch = max(epoch, int(held["epoch"]) + 1)
        if held.get("leader") == me:
            own.add((held.get("epoch", ""), held.get("renewed", "")))
            continue  # its own, from before a restart
        renewed = held.get("renewed", "")
        age = now - int(renewed) if renewed.isdigit() else None
        who = (f"{held.get('leader', 'an unknown writer')} (fence {fence_name(a.zone, owner)}, "
               + (f"renewed {age:.0f} s ago)" if age is not None
                  else "a fleet's leader: no renewal stamp)"))
        if take_over:
            notes.append(f"{a.zone}: took the zone from {who} (--take-over)")
        elif age is not None and age > STALE_AFTER:
            notes.append(f"{a.zone}: took the zone from {who}: it has not renewed its fence "
                         f"for {age / 60:.0f} min, so it stopped")
        else:
            raise ZoneHeld(f"{a.zone} is written by another controller: {who}. Two writers "
                           "undo each other's failovers: stop that one, or start this one "
                           "with --take-over (that one then stops writing)")
    if len(own) == 1 and not notes:
        (held_epoch, renewed), = own
        if held_epoch.isdigit() and renewed.isdigit() and now - int(renewed) < STALE_AFTER:
            return Claim(int(held_epoch), int(renewed))  # a restart: the fence as it was
    return Claim(epoch, int(now), tuple(notes))
