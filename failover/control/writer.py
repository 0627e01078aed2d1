"""The writer: plan -> write -> confirm, for the names whose answer moved.

It keeps the ledger's reading of DNS current (read in full at start and after an error,
then in the background every `controller.refresh` seconds unless the SOA serial says
nothing moved), writes urgent names (a decision changed: a failover) before the bulk
(creates, markers, drift) which goes out in chunks, and takes up what DNS said: names
refused by the safety guards, names it may not write, conflicts with another writer
(re-planned at once, backed off when they repeat) and DNS failures (backoff, said once
then at growing intervals).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from failover.control.house import collector_paused
from failover.dns.base import DnsConflict, DnsError, DnsServerFailed, DnsUnavailable
from failover.plan import to_json
from failover.reconcile import Ledger, read_actual

if TYPE_CHECKING:
    from failover.control.house import House, Tick
    from failover.dns.base import Adapter

# the controller's logger: operators' log filters key on its name
log = logging.getLogger("failover.controller")

CHUNK = 2000  # names of bulk work written per tick; failovers go between chunks
DNS_RETRY_CAP = 5.0  # seconds: the longest wait between DNS attempts while it fails
CONFLICTS_STUCK = 3  # write conflicts in a row that are not a race: back off, degraded


class Waiting(Exception):
    """DNS failed recently: this tick waits (backoff) rather than trying again."""


class Writer:
    """What is still to write, how DNS answered, and the writes themselves."""

    def __init__(self, house: House) -> None:
        self.house = house
        self.urgent: set[str] = set()  # names whose decision changed, not yet written
        self.backlog: list[str] = []  # names found different by a full comparison
        self.pending: list[float] = []  # times of health changes not yet served
        self.actual_at = 0.0
        self.serial: int | None = None  # the zone's SOA serial at the last full read
        self.reading: asyncio.Future[Any] | None = None  # a full read in the background
        self.writes = 0  # writes sent, to tell a reading a write overtook
        self.drift: list[str] | None = None  # names a background reading found different
        self.noted: dict[str, Any] = {}  # category -> what was last recorded, not to repeat it
        self.blocked: dict[str, str] = {}  # managed names it may not write, and why
        self.refused: set[str] = set()  # names whose plan the safety guards refused
        self.refusal: list[str] = []  # the guards the last refused plan broke
        self.dns_error: str | None = None
        self.conflicts = 0  # DNS writes refused as conflicts in a row
        self.dns_retry_at, self.dns_gap = 0.0, 0.0  # backoff while DNS fails
        self.prepared = False  # the adapter's prepare() ran for this config

    def reset(self) -> None:
        """A new config (or the first): nothing planned yet, the zone to be read."""
        self.prepared = False
        self.urgent, self.backlog, self.serial = set(), [], None
        self.reading = None
        self.refused, self.refusal = set(), []
        self.house.repeats.clear("refused")

    def drop_work(self) -> None:
        """A fleet follower's tick: it writes nothing, so nothing waits to be written."""
        self.urgent.clear()
        self.backlog = []
        self.pending.clear()

    def check_backoff(self, now: float) -> None:
        """Raise Waiting while backing off after DNS errors: this tick decides on (status
        shows what will be written when DNS answers) and writes nothing."""
        if now < self.dns_retry_at:
            raise Waiting

    async def prepare(self) -> None:
        """The adapter's prepare(), once per config, before its first write."""
        h = self.house
        if h.adapter is not None and not h.dry_run and not self.prepared:
            await asyncio.to_thread(h.adapter.prepare)
            self.prepared = True

    # ------------------------------------------------------------------ reading

    async def refresh(self, now: float) -> bool:
        """Bring the ledger's reading of DNS up to date; True when it took a new one.

        With no reading (start, after an error) it reads at once. Otherwise every
        `controller.refresh` seconds it starts a read in the background and takes its result up at a
        later tick, so a failover never waits behind a full read of a large zone; a
        reading that a write overtook is dropped, and a zone whose SOA serial has not
        moved since the last reading is not read at all.
        """
        h = self.house
        ledger = h.ledger
        if h.adapter is None:
            if ledger.actual is None:
                ledger.set_actual([])
                return True
            return False
        if ledger.actual is None:
            self.reading = None
            self.serial = await asyncio.to_thread(serial_of, h.adapter)
            records = await asyncio.to_thread(read_actual, h.cfg, h.adapter)
            ledger.set_actual(records)
            self.actual_at = now
            return True
        reading = self.reading
        if reading is not None:
            if not reading.done():
                return False
            self.reading = None
            result = reading.result()  # a DnsError is the tick's, as any other read's
            if result is None or result[2] != self.writes:
                return False  # nothing moved, or a write overtook the reading
            probe, self.serial, _, drift = result
            ledger.actual, ledger.existing = probe.actual, probe.existing
            self.drift = drift
            return True
        if now - self.actual_at <= h.cfg.controller.refresh:
            return False
        self.actual_at = now
        self.reading = asyncio.ensure_future(asyncio.to_thread(
            self.read_in_background, self.serial, self.writes, dict(ledger.desired)))
        self.reading.add_done_callback(lambda _: h.wake())
        return False

    def read_in_background(self, serial: int | None, writes: int,
                           desired: dict[Any, Any]) -> tuple[Ledger, int | None, int,
                                                             list[str]] | None:
        """A full reading of DNS compared with what is desired (None when the SOA serial
        says nothing moved), on a copy of the ledger: the tick goes on meanwhile."""
        h = self.house
        assert h.adapter is not None
        now = serial_of(h.adapter)
        if serial is not None and now == serial:
            return None
        probe = copy.copy(h.ledger)
        probe.desired = desired
        probe.set_actual(read_actual(h.cfg, h.adapter))
        return probe, now, writes, probe.drifted()

    # ------------------------------------------------------------------ writing

    async def write_due(self, tick: Tick, full: bool) -> None:
        """This tick's writes: after a full reading the drift becomes the bulk; then the
        urgent names, then one chunk of the bulk."""
        h = self.house
        if full:
            drift = self.drift
            if drift is None:
                drift = await asyncio.to_thread(h.ledger.drifted)
            self.drift = None
            self.backlog = [n for n in drift if n not in self.urgent]
            self.unblock(set(drift))
        if self.urgent:
            await self.write(sorted(self.urgent), tick, urgent=True)
        if self.backlog and tick.error is None:
            chunk, self.backlog = self.backlog[:CHUNK], self.backlog[CHUNK:]
            await self.write(chunk, tick, urgent=False)
            if self.refused.intersection(chunk):
                # planned again at the next tick, as refused urgent names are
                self.backlog += [n for n in chunk if n in self.refused]
            elif self.backlog:
                h.wake()  # the next chunk, after whatever changed meanwhile

    async def write(self, names: list[str], tick: Tick, *, urgent: bool) -> None:
        """Plan `names` against DNS, and write the plan unless the guards refuse it."""
        h = self.house
        if h.adapter is None:  # provider none: decide and show, write nothing
            self.urgent.clear()
            self.pending.clear()
            return
        ledger = h.ledger
        t0 = time.perf_counter()
        if len(names) > 100:
            with collector_paused():
                planned = await asyncio.to_thread(ledger.plan, names)
        else:
            planned = ledger.plan(names)
        plan_s = time.perf_counter() - t0
        tick.planned = planned
        was = {n: self.blocked[n] for n in names if n in self.blocked}
        for name in was:
            del self.blocked[name]
        self.blocked.update(planned.blocked)
        if was != planned.blocked:
            h.changed()  # /status lists them
        self.note_blocked(planned.blocked)
        if urgent:
            self.urgent -= set(planned.blocked)
        changes = planned.changes
        if not changes:
            if urgent:
                self.urgent.clear()
                self.pending.clear()
            self.accepted(names)
            return
        if planned.violations and not h.force:
            tick.refused = planned.violations
            self.refusing(names, planned.violations, changes)
            return
        if h.dry_run:
            if self.new("dry-run", changes.changes):
                h.event("dns", "dry-run", f"would apply {changes.summary()}", to_json(changes))
                log.info("event=dry_run changes=%r", changes.summary())
            if urgent:
                self.urgent.clear()
            return
        adapter = h.adapter
        before = ledger.actual_of(names)
        h.check_leading()  # the fleet's deadline, checked as late as can be
        self.writes += 1  # a reading taken before this write is stale once it lands
        report = await asyncio.to_thread(adapter.apply, changes, before)
        done = h.clock()
        written = changes.only(c for c in changes.changes
                               if changes.owner(c.record.name) not in report.rejected)
        ledger.applied(written)
        self.accepted(names)
        self.serial = await asyncio.to_thread(serial_after, adapter, self.serial,
                                              report.messages)
        if urgent:
            self.urgent -= set(names)
        tick.applied += len(written.changes)
        m = h.metrics
        m.dns_write.observe(report.applied_s)
        for c in written.changes:
            m.dns_changes.labels(c.action).inc()
        if urgent:
            for at in self.pending:
                m.health_to_served.observe(max(0.0, done - at))
            self.pending.clear()
        self.blocked.update(report.rejected)
        if report.rejected and self.new("rejected", report.rejected):
            for name, why in report.rejected.items():
                h.event("error", name, f"{name} not written: {why}")
                log.error("event=record_rejected name=%s reason=%r", name, why)
        detail = to_json(written) if len(written.changes) <= 200 else {
            "summary": {a: written.count(a) for a in ("create", "upsert", "delete")},
            "names": len(names)}
        h.event("dns", "dns", f"applied {written.summary()}"
                + ("" if urgent else " (bulk)"), {
                    **detail, "decide_ms": round(tick.decide_s * 1000, 2) if urgent else None,
                    "plan_ms": round(plan_s * 1000, 2),
                    "applied_ms": round(report.applied_s * 1000, 2),
                    "confirmed_ms": round(report.confirmed_s * 1000, 2),
                    "messages": report.messages, "notes": report.notes})
        if pruned := [n for n in planned.pruned if n not in report.rejected]:
            h.event("dns", "prune", f"pruned {len(pruned)} name(s) no longer in the config "
                    f"(deleted with their markers): {', '.join(pruned[:20])}"
                    + (f" and {len(pruned) - 20} more" if len(pruned) > 20 else ""),
                    {"names": pruned[:200], "count": len(pruned)})
            log.info("event=names_pruned count=%d names=%r", len(pruned), pruned[:20])

    # --------------------------------------------------- what DNS and the guards said

    def failed(self, exc: DnsError, tick: Tick, now: float) -> None:
        """A read or write failed: read again next tick; a conflict is re-planned at once
        (backed off once it repeats), any other failure backs off 1, 2, 4, 5, 5... s."""
        h = self.house
        tick.error = str(exc)
        h.ledger.actual = None  # read again next tick
        self.backlog = []
        kind = "conflict" if isinstance(exc, DnsConflict) else type(exc).__name__
        h.metrics.dns_errors.labels(kind).inc()
        if isinstance(exc, DnsConflict):
            # a race with another writer: re-plan at once against a fresh read; the
            # same conflict again and again is not a race: back off, and say so
            self.conflicts += 1
            said = h.repeats.say("conflict", str(exc), now)
            stuck = self.conflicts >= CONFLICTS_STUCK
            if said is not None:
                h.event("error", "dns", said, {"kind": kind})
                log.log(logging.ERROR if stuck else logging.WARNING,
                        "event=dns_error kind=%s conflicts=%d error=%r", kind,
                        self.conflicts, said)
            if stuck:
                self.back_off(str(exc), now)
            else:
                h.wake()
            return
        if isinstance(exc, DnsUnavailable) and not isinstance(exc, DnsServerFailed):
            h.dns_reach = False  # no answer at all (a SERVFAIL is an answer)
        # said once, then at growing intervals; tried again after 1, 2, 4, 5, 5... s
        self.back_off(str(exc), now)
        said = h.repeats.say("dns", str(exc), now)
        if said is not None:
            h.event("error", "dns", said, {"kind": kind})
            log.error("event=dns_error kind=%s error=%r", kind, said)

    def back_off(self, error: str, now: float) -> None:
        """Wait before the next DNS attempt: double the last wait, up to DNS_RETRY_CAP."""
        self.dns_error = error
        self.dns_gap = min(max(self.house.reconcile_interval, self.dns_gap * 2), DNS_RETRY_CAP)
        self.dns_retry_at = now + self.dns_gap

    def succeeded(self, tick: Tick) -> None:
        """A tick without DNS errors: failures and conflicts are over, said once."""
        h = self.house
        if h.is_writer() and h.adapter is not None and tick.applied:
            h.dns_reach = True
        failures = h.repeats.clear("dns")
        if self.conflicts and (tick.applied or not self.urgent):
            # a write went through, or nothing is left to write: resolved
            failures += h.repeats.clear("conflict")
            self.conflicts = 0
        self.dns_error, self.dns_gap = None, 0.0
        if failures:
            h.event("dns", "dns", f"DNS works again after {failures} failed attempts")
            log.info("event=dns_recovered failures=%d", failures)

    def refusing(self, names: list[str], violations: list[str], changes: Any) -> None:
        """A plan the safety guards refused: nothing of it is written, and until a plan
        for those names passes, /readyz is degraded and the log and history say so (once,
        then at growing intervals). The names stay pending: each tick plans them again."""
        h = self.house
        first = not self.refused
        self.refused.update(names)
        if violations != self.refusal:
            self.refusal = violations
            h.changed()
        said = h.repeats.say("refused", "; ".join(violations), h.clock())
        if said is None:
            return
        hint = "nothing written for these names; `failover run --force` applies it"
        log.error("event=plan_refused names=%d violations=%r: %s", len(self.refused), said,
                  hint)
        h.event("error", "plan", f"plan refused by safety guards: {said} ({hint})",
                to_json(changes) if first and len(changes.changes) <= 200 else {
                    "names": len(self.refused)})

    def accepted(self, names: list[str]) -> None:
        """Names planned within the guards (written, or nothing to write): a refusal that
        held them is over once no refused name is left."""
        if not self.refused:
            return
        self.refused.difference_update(names)
        if self.refused:
            return
        h = self.house
        self.refusal = []
        h.changed()
        failures = h.repeats.clear("refused")
        h.event("dns", "plan", f"plans pass the safety guards again (after {failures} "
                "refused)")
        log.info("event=plan_accepted refused=%d", failures)

    def unblock(self, drift: set[str]) -> None:
        """After a full reading: names left alone before that now hold what is desired
        and may be written (a marker restored by hand) are no longer reported."""
        cleared = [n for n in self.blocked if n not in drift]
        if not cleared:
            return
        h = self.house
        for name in cleared:
            del self.blocked[name]
        self.noted.pop("blocked", None)  # a name blocked again is said again
        h.changed()
        shown = ", ".join(sorted(cleared)[:3]) + (f" and {len(cleared) - 3} more"
                                                   if len(cleared) > 3 else "")
        h.event("dns", "dns", f"{shown}: written by this controller again (found as "
                "desired, marker in place)")
        log.info("event=names_writable count=%d names=%r", len(cleared), shown)

    def note_blocked(self, blocked: dict[str, str]) -> None:
        """Say which managed names are left alone, and why (once per set)."""
        if blocked and self.new("blocked", blocked):
            for name, why in blocked.items():
                self.house.event("error", name, f"{name} left alone: {why}")
                log.error("event=name_not_written name=%s reason=%r", name, why)

    def new(self, category: str, value: Any) -> bool:
        """True when `value` differs from what was last noted for `category` (and note it)."""
        if self.noted.get(category) == value:
            return False
        self.noted[category] = value
        return True


def serial_of(adapter: Adapter) -> int | None:
    """The zone's SOA serial as its primary serves it; None when it cannot say."""
    ask = getattr(adapter, "serial", None)
    if ask is None:
        return None
    try:
        return cast(int | None, ask())
    except DnsError:
        return None


def serial_after(adapter: Adapter, before: int | None, messages: int) -> int | None:
    """The SOA serial after our own write when it moved by exactly our messages (BIND
    adds one per UPDATE), so the next refresh still knows nothing else changed; None
    (read in full at the next refresh) when it cannot tell."""
    if before is None or not messages:
        return None
    now = serial_of(adapter)
    return now if now == (before + messages) % 2**32 else None


def native_for(adapter: Adapter | None) -> Callable[[str], bool]:
    """Whether a name's zone routes natively (per zone when the adapter has several)."""
    if adapter is None:
        return lambda _: False
    per_name = getattr(adapter, "native_for", None)
    if per_name is not None:
        return cast(Callable[[str], bool], per_name)
    flag = adapter.native_routing
    return lambda _: flag
