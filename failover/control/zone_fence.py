"""The DNS fence as the controller holds it: claimed alone, renewed, taken before writing.

A controller alone claims each zone's fence (failover.dns.claim) under its own identity,
renews its stamp every RENEW_EVERY, and stops writing (degraded, said with backoff) while
another controller holds the zone. A new holder, alone or a fleet's new leader, writes
its epoch into the fence before its first write. The functions below apply a fence, a
take-over or a reachability check to every zone of an adapter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from failover.control.writer import Writer, serial_after
from failover.dns import leaves
from failover.dns.base import DnsError
from failover.dns.claim import RENEW_EVERY

if TYPE_CHECKING:
    from failover.control.house import House
    from failover.dns.base import Adapter

# the controller's logger: operators' log filters key on its name
log = logging.getLogger("failover.controller")


class HeldElsewhere(Exception):
    """Alone, and another controller holds the zone's fence: it writes nothing."""


class ZoneFence:
    """This controller's hold on the zones' fence: the claim alone, renewal, take-over."""

    def __init__(self, house: House, writer: Writer, take_over: bool) -> None:
        self.house = house
        self.writer = writer
        self.take_over_zone = take_over  # --take-over: take a fence another holds
        self.held_by: str | None = None  # why it may not write: another holds the zone
        self.claim_retry_at = 0.0
        self.renewed_at: float | None = None  # when its fence stamp was last renewed
        self.renewing = False
        self.fence_due = False  # a new holder takes the DNS fence before writing
        self.epoch: int | None = None  # alone: the epoch its writes carry
        self.claim_due = False

    def reset(self, adapter: Adapter | None) -> None:
        """A new config (or the first): alone and writing, claim the zones again."""
        from failover.dns.claim import zone_adapters

        h = self.house
        self.claim_due = (h.member is None and not h.dry_run and adapter is not None
                          and bool(zone_adapters(adapter)))
        self.renewed_at = None

    async def step(self, now: float) -> None:
        """Claim or renew, as due; raise HeldElsewhere while another holds the zone."""
        if self.claim_due and now >= self.claim_retry_at:
            await self.claim(now)
        elif self.renewed_at is not None and now - self.renewed_at >= RENEW_EVERY:
            self.renew(now)
        if self.held_by is not None:
            raise HeldElsewhere

    async def take(self) -> None:
        """A new holder's (or a renewal's) write of the fence, before any other write."""
        h = self.house
        if not (self.fence_due and h.adapter is not None and not h.dry_run):
            return
        adapter = h.adapter
        h.check_leading()
        took = await asyncio.to_thread(take_over, adapter)
        self.fence_due = False
        if self.renewing:
            self.renewing = False
            self.writer.serial = await asyncio.to_thread(serial_after, adapter, self.writer.serial,
                                                      1 if took else 0)
        else:
            epoch = h.leading if h.member is not None else self.epoch
            h.event("dns", "fence", f"took the DNS fence: writes now carry epoch "
                    f"{epoch}" + ("" if took else " (it held it already)"), {"epoch": epoch})

    async def claim(self, now: float) -> None:
        """Alone: take each zone's fence, or learn that another controller holds it."""
        from failover.dns.claim import ZoneHeld, claim, identity

        h = self.house
        assert h.adapter is not None
        me = identity(h.cfg.path(h.cfg.controller.state))
        try:
            got = await asyncio.to_thread(claim, h.adapter, me, h.cfg.ownership.owner_id,
                                          take_over=self.take_over_zone, now=time.time())
        except ZoneHeld as exc:
            self.held(str(exc), now)
            return
        for note in got.notes:
            h.event("dns", "fence", note)
            log.warning("event=zone_taken %s", note)
        fence(h.adapter, got.epoch, me, h.cfg.ownership.owner_id, renewed=got.renewed)
        self.epoch = got.epoch
        self.claim_due = False
        self.fence_due = True
        self.renewed_at = now - max(0.0, time.time() - got.renewed)
        if self.held_by is not None:
            self.held_by = None
            h.changed()
            h.repeats.clear("held")

    def renew(self, now: float) -> None:
        """Alone: a fresh stamp in the fence (every RENEW_EVERY), so a controller that
        finds it knows this one still runs; written with the next tick's fence step."""
        from failover.dns.claim import identity

        h = self.house
        assert h.adapter is not None
        fence(h.adapter, self.epoch, identity(h.cfg.path(h.cfg.controller.state)),
              h.cfg.ownership.owner_id, renewed=int(time.time()))
        self.renewed_at = now
        self.fence_due = self.renewing = True

    def held(self, why: str, now: float) -> None:
        """Another controller holds the zone: write nothing, say so (degraded, ERROR,
        history), and look again every RENEW_EVERY (its fence may go stale)."""
        h = self.house
        if self.held_by != why:
            h.changed()
        self.held_by = why
        self.claim_due = True
        self.claim_retry_at = now + RENEW_EVERY
        self.renewed_at = None
        said = h.repeats.say("held", why, now)
        if said is not None:
            h.event("error", "fence", f"not writing DNS: {said}")
            log.error("event=zone_held error=%r", said)


def fence(adapter: Adapter, epoch: int | None, holder: str, owner: str,
          may_write: Callable[[], bool] | None = None, renewed: int | None = None) -> None:
    """Fence the adapter's writes (each zone's, for several) with a writer's epoch, in
    the fence of `owner` (ownership.owner_id); with `may_write`, every message a write
    sends checks it first (a fleet leader's deadline); `renewed`: a single controller's
    renewal stamp."""
    for a in leaves(adapter):
        set_fence = getattr(a, "fence", None)
        if set_fence is not None:
            set_fence(epoch, holder, renewed)
            a.fence_owner = owner
        if hasattr(a, "may_write"):
            a.may_write = may_write


def reachable(adapter: Adapter) -> bool | None:
    """Whether every zone's DNS server answers now (its SOA serial); None when the
    adapter cannot tell cheaply (Route 53). Blocking: call it off the loop."""
    answers: bool | None = None
    for a in leaves(adapter):
        ask = getattr(a, "serial", None)
        if ask is None:
            continue
        try:
            ask()
        except DnsError:
            return False
        answers = True
    return answers


def take_over(adapter: Adapter) -> bool:
    """A new leader's first write: its epoch into every zone's fence. True when written."""
    took = False
    for a in leaves(adapter):
        take = getattr(a, "take_over", None)
        if take is not None:
            took = bool(take()) or took
    return took
