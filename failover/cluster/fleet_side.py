"""The controller's fleet side: votes, views, leadership, the fence, DNS reachability.

Alone (no `controller.cluster`) it only says that this controller writes. In a fleet it
takes up the other vantages' views (joined, changed, expired, left out of the vote),
publishes this vantage's own view when it changed, counts the fresh results a vantage
must see before it votes again after (re)joining, follows this instance's leadership
(a new leader fences the adapter and takes the DNS fence before writing), hands the
lead over when the leader cannot reach DNS and another vantage can, and builds the
fleet's part of /status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.cluster.voters import Voters
from failover.control.journal import Journal
from failover.control.writer import Writer
from failover.control.zone_fence import ZoneFence, fence, reachable

if TYPE_CHECKING:
    from failover.cluster.member import Member
    from failover.control.house import House
    from failover.dns.base import DnsFenced
    from failover.health import Transition
    from failover.probes import ProbeTarget

# the controller's logger: operators' log filters key on its name
log = logging.getLogger("failover.controller")

VIEW_REFRESH = 5.0  # seconds between republished views when only latencies moved


class FleetSide:
    """Votes, views, leadership and DNS reachability of one fleet member (or: alone)."""

    def __init__(self, house: House, journal: Journal, zone_fence: ZoneFence,
                 writer: Writer) -> None:
        self.house = house
        self.journal, self.zone_fence, self.writer = journal, zone_fence, writer
        member = house.member
        self.member = member  # a fleet: this instance's lease, election and views
        # what a flip in the fleet's vote does (the probe side's, wired by the controller)
        self.on_flip: Callable[[Transition], None] = lambda _: None
        # what a change of other vantages' views does beyond flips (their latencies)
        self.on_views: Callable[[], None] = lambda: None
        self.remote: dict[str, Any] = {}  # vantage -> (view revision, its leaf states)
        self.voters = Voters(member.prefix if member is not None else "")  # views that count
        self.expired: dict[str, float] = {}  # vantage -> when its view expired
        self.published_changes = -1  # board.local_changes when the view was published
        self.published_at = 0.0
        self.publishing: asyncio.Future[Any] | None = None
        self.publish_error: str | None = None
        self.generation = 0  # the member's lease generation the view was published under
        # results per target since this vantage (re)joined: it votes once each check has
        # seen failure_threshold of them, so a restarted or paused vantage never votes a
        # dead region healthy from what it saw before (None: it votes)
        self.fresh: dict[str, int] | None = {} if member is not None else None
        self.fresh_done = 0  # checks in `fresh` that reached their failure_threshold
        self.seen_changes = 0  # board.local_changes when a result last woke the loop
        self.reach_at = 0.0
        self.reaching: asyncio.Future[Any] | None = None
        self.published_reach: bool | None = None

    def restore_remote(self, now: float) -> None:
        """A new health board (a reload) takes up the views already counted."""
        if self.member is not None and self.remote:
            self.house.board.set_remote({v: states for v, (_, states) in self.remote.items()},
                                        now)
            self.published_changes = -1

    def on_result(self, target: ProbeTarget) -> None:
        """Count one fresh result towards voting again, and wake the loop to publish
        this vantage's view when one of its checks flipped."""
        h = self.house
        if self.fresh is not None:
            n = self.fresh[target.key] = self.fresh.get(target.key, 0) + 1
            if n == h.cfg.checks[target.check].failure_threshold:
                self.fresh_done += 1  # one more check with enough fresh results
                if self.votes():
                    h.wake()
        if self.member is not None and h.board.local_changes != self.seen_changes:
            self.seen_changes = h.board.local_changes
            h.wake()  # a check flipped here: publish this vantage's view now

    def step(self) -> None:
        """Take up what the fleet did: other vantages' views (joined, changed, expired),
        this instance's leadership, and publish this vantage's view when it changed."""
        h = self.house
        member = self.member
        assert member is not None
        now = h.clock()
        cluster = h.cfg.controller.cluster
        live = member.views()
        # only the views of the config's vantages that parse whole count (cluster/voters.py)
        for note in self.voters.sort(live, cluster.vantages if cluster else None):
            log.log(note.level, "event=vantage_%s vantage=%r %s", "refused" if note.refused
                    else "readmitted", note.vantage, note.message)
            if h.is_writer():
                h.event("error" if note.refused else "controller", "fleet", note.message)
            h.changed()
        changed = False
        for vantage, (revision, view) in self.voters.counted.items():
            if not view.ready or vantage == member.vantage:
                continue  # still on its first probe round: it does not vote yet
            held = self.remote.get(vantage)
            if held is None or held[0] != revision:
                if held is None and h.is_writer():
                    h.event("controller", "fleet", f"vantage {vantage} reports "
                            f"(host {view.host}, PID {view.pid})")
                    self.expired.pop(vantage, None)
                self.remote[vantage] = (revision, view.checks)
                changed = True
        for vantage in [v for v in self.remote if v not in self.voters.counted]:
            del self.remote[vantage]
            if vantage in live:  # left out of the vote (said above), not expired
                changed = True
                continue
            self.expired[vantage] = time.time()
            if h.is_writer():
                h.event("error", "fleet", f"vantage {vantage}'s view expired (its lease "
                        "ended: the instance stopped or cannot reach etcd); it no longer "
                        "votes")
            log.warning("event=vantage_expired vantage=%s", vantage)
            changed = True
        if changed:
            flips = h.board.set_remote({v: st for v, (_, st) in self.remote.items()}, now)
            for flip in flips:
                self.on_flip(flip)
            self.on_views()
            h.changed()
        self.take_leadership(member.leading())
        self.check_reach(member, now)
        if member.generation != self.generation:
            self.generation = member.generation
            self.published_at = 0.0
            if self.fresh is None:  # a new lease after losing one: old views are stale
                self.fresh, self.fresh_done = {}, 0
                h.event("controller", "fleet", f"{member.vantage} rejoined the fleet: it "
                        "votes again once each check has seen failure_threshold results")
        if h.ready and self.publishing is None and self.votes() and (
                h.board.local_changes != self.published_changes or (
                    h.latency_records and now - self.published_at >= VIEW_REFRESH)
                or not self.published_at or h.dns_reach != self.published_reach):
            self.publish_view(member, now)

    def check_reach(self, member: Member, now: float) -> None:
        """A follower asks the DNS server for its SOA every half lease (it writes
        nothing, so nothing else tells it); a leader that has failed to reach DNS for
        longer than a lease steps down when another live vantage reaches it, never into
        a fleet where nobody does."""
        h = self.house
        adapter = h.adapter
        if adapter is None or h.dry_run:
            return
        if not h.is_writer():
            if self.reaching is None and now - self.reach_at >= max(1.0, member.ttl / 2):
                self.reach_at = now
                self.reaching = asyncio.ensure_future(asyncio.to_thread(reachable, adapter))

                def done(fut: asyncio.Future[Any]) -> None:
                    self.reaching = None
                    if not fut.cancelled() and fut.exception() is None and (
                            fut.result() != h.dns_reach):
                        h.dns_reach = fut.result()
                        h.wake()  # publish it

                self.reaching.add_done_callback(done)
            return
        since = h.repeats.since("dns")
        if since is None or h.dns_reach is not False or now - since <= member.ttl:
            return
        # the fleet's own vantages only (the allow-list): a key anyone wrote cannot
        # make the leader step down
        able = [v for v, (_, view) in self.voters.counted.items()
                if v != member.vantage and view.dns is True]
        if not able:
            return  # nobody else reaches DNS either: stepping down would not help
        dns_error = self.writer.dns_error
        why = (f"{member.vantage} cannot reach DNS for {now - since:.0f} s "
               f"({dns_error}) while {', '.join(sorted(able))} can: it steps down "
               "so that one of them writes")
        h.event("error", "fleet", why)
        log.error("event=leader_cut_from_dns vantage=%s able=%r error=%r", member.vantage,
                  able, dns_error)
        member.resign(why, hold=2 * member.ttl)
        self.take_leadership(member.leading())

    def votes(self) -> bool:
        """Whether this vantage's view is fresh enough to count (see `fresh`)."""
        if self.fresh is None:
            return True
        if self.fresh_done >= len(self.house.targets):
            self.fresh = None
            return True
        return False

    def publish_view(self, member: Member, now: float) -> None:
        """Publish this vantage's view (its checks' states, whether it reaches DNS)."""
        from failover.cluster import views as codec

        h = self.house
        board = h.board
        self.published_changes = board.local_changes
        self.published_at = now
        self.published_reach = h.dns_reach
        view = {"ready": True, "at": time.time(), "dns": h.dns_reach,
                "checks": codec.encode(board.local_states())}

        def done(fut: asyncio.Future[Any]) -> None:
            self.publishing = None
            error = fut.exception()
            if error is not None:
                self.published_changes = -1  # again at the next turn
                self.publish_error = str(error)
            else:
                self.publish_error = None

        self.publishing = asyncio.ensure_future(asyncio.to_thread(member.publish, view))
        self.publishing.add_done_callback(done)

    def take_leadership(self, epoch: int | None) -> None:
        """Follow this instance's leadership: a new leader fences the adapter with its
        epoch and takes the DNS fence before its first write."""
        h = self.house
        if epoch == h.leading:
            return
        assert self.member is not None
        vantage = self.member.vantage
        if epoch is not None:
            h.event("controller", "fleet", f"{vantage} leads (epoch {epoch}): it writes DNS")
            log.info("event=leading vantage=%s epoch=%d", vantage, epoch)
            if h.adapter is not None:
                member = self.member
                fence(h.adapter, epoch, vantage, h.cfg.ownership.owner_id,
                      lambda: member.leading() == epoch)
            self.zone_fence.fence_due = True
            h.ledger.actual = None  # what the previous leader wrote: read it afresh
            self.journal.in_force = frozenset()  # say which overrides are in force, as leader
            self.journal.decisions_dirty = True
            h.wake()
        else:
            h.event("controller", "fleet", f"{vantage} no longer leads (epoch "
                    f"{h.leading}): it writes nothing")
            log.warning("event=following vantage=%s epoch=%s", vantage, h.leading)
        h.leading = epoch
        h.changed()

    async def fenced(self, error: DnsFenced) -> None:
        """The DNS server refused a write under this leader's epoch: a newer leader
        holds the fence, so this one resigns and takes that up at once."""
        assert self.member is not None
        h = self.house
        h.event("error", "fence", str(error), {"epoch": error.epoch})
        log.error("event=fenced epoch=%s newer=%d error=%r", h.leading, error.epoch,
                  str(error))
        await asyncio.to_thread(self.member.resign, str(error))
        self.step()

    def problems(self) -> list[str]:
        """Why the fleet keeps this instance degraded (etcd, no leader, its view)."""
        out: list[str] = []
        if self.member is None:
            return out
        problem = self.member.problem()
        if problem is not None:
            out.append(problem)
        elif self.member.leader() is None:
            out.append("the fleet has no leader: nobody writes DNS until one is elected")
        if self.publish_error is not None:
            out.append(f"this vantage's view could not be published: {self.publish_error}")
        left_out = self.voters.problem()
        if left_out is not None:
            out.append(left_out)
        return out

    def update_gauges(self) -> None:
        """The fleet's gauges: leading (and writing), the epoch, vantages counted."""
        if self.member is None:
            return
        h = self.house
        m = h.metrics
        leader = self.member.leader()
        writing = h.leading is not None and self.member.leading() == h.leading
        m.fleet_leader.set(1 if writing else 0)
        m.fleet_epoch.set(leader["epoch"] if leader else 0)
        m.fleet_vantages.set(1 + len(self.remote))

    def cluster_maker(self) -> Callable[[], dict[str, Any]] | None:
        """The fleet as this instance sees it, for /status (its role, the leader, every
        vantage's view, live or expired, and the odd one out), by a function to run on a
        thread: its inputs are taken now, on the loop; decoding the views and comparing
        them (endpoints x vantages) happens there. None outside a fleet."""
        member = self.member
        if member is None:
            return None
        from failover.cluster import views as codec

        h = self.house
        board = h.board
        snapshot = board.snapshot(h.clock())
        all_views = {member.vantage: board.local_states(),
                     **{v: st for v, (_, st) in self.remote.items()}}
        live, expired, leader = dict(self.voters.counted), dict(self.expired), member.leader()
        unknown, malformed = dict(self.voters.unknown), dict(self.voters.malformed)
        # what the write path checks: past its deadline a leader writes nothing
        epoch = h.leading if member.leading() == h.leading else None
        head = {"vantage": member.vantage, "role": "leader" if epoch is not None else "follower",
                "epoch": epoch, "leader": None if leader is None else {
                    k: leader.get(k) for k in ("vantage", "host", "pid", "epoch", "started")},
                "lease_ttl": member.ttl,
                "deadline_in": (round(member.deadline - time.monotonic(), 2)
                                if epoch is not None else None),
                "lease_renewed_at": member.lease_renewed, "etcd_error": member.problem()}

        def make() -> dict[str, Any]:
            result = {eid: e.healthy for eid, e in snapshot.endpoints.items()}
            odd = codec.odd_ones(all_views, result)
            vantages = []
            for vantage, (_, view) in sorted(live.items()):
                states = all_views.get(vantage, {})
                down = sorted({e for (e, _), st in states.items() if not st.healthy})
                vantages.append({
                    "vantage": vantage, "live": True, "ready": view.ready,
                    "host": view.host, "pid": view.pid,
                    "reported_at": view.at, "sees_down": down,
                    "disagrees": odd.get(vantage, []),
                    "odd": bool(odd.get(vantage)) and all(
                        not st.healthy for st in states.values()) and any(result.values())})
            for vantage, at in sorted(expired.items()):
                vantages.append({"vantage": vantage, "live": False, "expired_at": at,
                                 "note": "its view expired with its lease: not counted"})
            return {**head, "vantages": vantages, "odd_ones": sorted(odd),
                    # views left out of the vote (cluster/voters.py)
                    "unknown_vantages": [{"vantage": v, "published_by": who, "note": "not in "
                                          "controller.cluster.vantages: not counted"}
                                         for v, who in sorted(unknown.items())],
                    "unreadable_views": [{"vantage": v, "why": why, "note": "not counted"}
                                         for v, why in sorted(malformed.items())]}

        return make
