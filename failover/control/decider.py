"""The decider: health and overrides -> every record's decision, and what moved.

It decides every record (policies.decide_all, on a thread: 10,000 records cost tens of
milliseconds the probes must not wait for) when something a decision depends on changed
(a flip, an override, a latency move, a hold ending), hands the names whose answer moved
to the writer (urgent: a failover; new names and TTL edits: bulk), and records each
decision that is news in the history.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import TYPE_CHECKING, Any

from failover.control.house import collector_paused
from failover.control.journal import Journal
from failover.control.writer import Writer
from policies import decide_all

if TYPE_CHECKING:
    from failover.control.house import House, Tick
    from policies import Decision


class Decider:
    """The decisions in force, when to decide again, and deciding."""

    def __init__(self, house: House, writer: Writer, journal: Journal) -> None:
        self.house = house
        self.writer = writer
        self.journal = journal
        self.decisions_version = 0  # bumped when a decision /status shows changed
        self.decide = True  # decide every record at the next tick
        self.lat_decided: dict[str, float] = {}  # endpoint -> latency at the last decide
        self.holds: list[Decision] = []  # decisions holding an answer on purpose
        self.release_at: float | None = None  # the earliest end of a timed hold

    def due(self) -> bool:
        """Whether this tick decides again: something changed, or a hold may end."""
        return self.decide or self.holding()

    def holding(self) -> bool:
        """Whether a failback delay is running (its end is a change no probe announces)."""
        if self.release_at is not None and self.house.clock() >= self.release_at:
            return True  # a latency answer's minimum hold ended
        return any(d.basis == "hold" and d.policy == "failover" for d in self.holds)

    async def decide_now(self, tick: Tick, overrides: Any, full: bool) -> Any:
        """Decide every record on health as it is now; the names whose answer moved are
        urgent. Returns the snapshot decided on."""
        h = self.house
        writer = self.writer
        # health as it is now, taken with the flag cleared and no wait between: a flip
        # during a read (DNS slow or down) is in this snapshot, and one during the decide
        # below sets the flag for the next tick
        self.decide = False
        now = h.clock()
        snapshot = h.board.snapshot(now)
        self.lat_decided = {eid: e.latency_ms for eid, e in snapshot.endpoints.items()
                            if e.latency_ms is not None}
        previous = h.decisions
        t0 = time.perf_counter()
        with collector_paused():
            decisions, moved = await asyncio.to_thread(self.decide_all, snapshot, overrides,
                                                       now)
        tick.decide_s = time.perf_counter() - t0
        tick.snapshot = snapshot
        # the decisions, the ledger and the config are long-lived: keep the cyclic
        # collector from walking them (a full pass over 10,000 records holds the
        # interpreter, and so the probes, for over 100 ms); they are acyclic and freed by
        # reference counting when replaced
        gc.freeze()
        # urgent: an answer that moved (a failover, a drain, a pin); a name decided for
        # the first time is bulk work, like markers and TTL edits
        urgent = {d.name for d in decisions if d.name in moved and (
            (p := previous.get(d.key)) is not None and p.values != d.values)}
        writer.urgent |= urgent
        if not full:
            writer.backlog += sorted(moved - urgent - set(writer.backlog))
        if not urgent:
            writer.pending.clear()  # nothing to serve for those health changes
        return snapshot

    def decide_all(self, snapshot: Any, overrides: Any,
                   now: float) -> tuple[list[Decision], set[str]]:
        """Every record's decision, and the names whose desired records moved (a thread:
        10,000 records cost tens of milliseconds the probes must not wait for)."""
        h = self.house
        vantages = self.network_vantages()
        latencies = h.board.vantage_latencies(vantages) if vantages else None
        decisions = decide_all(h.cfg, snapshot, overrides, h.decisions, now, latencies)
        moved = h.ledger.set_decisions(decisions)
        self.note_decisions(decisions)  # the loop only appends events and reads decisions
        return decisions, moved

    def count_network_answers(self, decisions: list[Decision]) -> None:
        """The failover_network_answers gauge: per network and region, the records it
        answers (made when a decision changed, never per tick)."""
        counts: dict[tuple[str, str], int] = {}
        for d in decisions:
            for r in d.regions:
                counts[(d.network, r)] = counts.get((d.network, r), 0) + 1
        gauge = self.house.metrics.network_answers
        for net in self.house.cfg.network_names:
            for region in self.house.cfg.regions:
                gauge.labels(net, region).set(counts.get((net, region), 0))

    def network_vantages(self) -> set[str]:
        """The vantages whose latencies answer client networks (latency records only)."""
        cfg = self.house.cfg
        return cfg.memo("network_vantages", lambda: {
            n.vantage for n in cfg.networks.values() if n.vantage} if any(
            r.policy == "latency" for r in cfg.records) else set())

    def remote_views_changed(self) -> None:
        """Other vantages' views changed: decide again when their latencies answer
        client networks."""
        if self.network_vantages():
            self.decide = True

    def note_decisions(self, decisions: list[Decision]) -> None:
        """Take up new decisions: the news in the history, the metric, saves due. The
        networks of one record that get the same news share one history line."""
        h = self.house
        changed = False
        writer = h.is_writer()  # a fleet's followers decide too; the leader records it
        known = h.decisions
        moved = 0
        news: list[Decision] = []
        for d in decisions:
            prev = known.get(d.key)
            # a latency "hold" keeps the same answer through noise: not news; a failback
            # hold is (it says when traffic will return)
            if writer and (prev is None or prev.values != d.values or (
                    basis_class(prev.basis) != basis_class(d.basis)) or (
                    d.basis == "hold" and d.policy == "failover" and prev.basis != "hold")):
                news.append(d)
            if prev is None:
                changed = True
            elif prev.values != d.values:
                moved += 1
                changed = True
            elif prev.basis != d.basis or prev.tier != d.tier or prev.usable != d.usable:
                changed = True
        if moved:
            h.metrics.answer_changes.inc(moved)
        self.tell(news, known)
        # the tick runs every second: write decisions to state only when one changed
        self.journal.decisions_dirty |= changed or len(decisions) != len(known)
        if changed:
            h.changed()
            self.decisions_version += 1
            if h.cfg.networks:
                self.count_network_answers(decisions)
        h.decisions = {d.key: d for d in decisions}
        self.holds = [d for d in decisions if d.basis == "hold"]
        self.release_at = min((d.hold_until for d in self.holds if d.hold_until), default=None)

    def tell(self, news: list[Decision], known: dict[Any, Decision] | None = None) -> None:
        """A history line per decision that is news; a record's networks that got the
        same news (values, basis, reason) share one, naming them. Against the decisions
        it replaces (`known`), the line names the regions the answer left because they
        could not serve (a failover away from them) and those it returned to once they
        could again (a failback)."""
        h = self.house
        i = 0
        while i < len(news):
            d = news[i]
            j = i + 1
            while j < len(news) and news[j].name == d.name and news[j].type == d.type and (
                    news[j].values == d.values and news[j].basis == d.basis
                    and news[j].reason == d.reason):
                j += 1
            nets = [n.network for n in news[i:j] if n.network]
            prev = (known or {}).get(d.key)
            moves = {}
            if prev is not None:
                left = [r for r in prev.regions if r not in d.regions and r not in d.usable]
                back = [r for r in d.regions if r not in prev.regions and r not in prev.usable]
                moves = {**({"left": left} if left else {}),
                         **({"returned": back} if back else {})}
            h.event("decision", f"{d.name} {d.type}" + (f" ({', '.join(nets)})" if nets else ""),
                    d.reason, {"values": list(d.values), "basis": d.basis,
                               **({"networks": nets} if nets else {}), **moves})
            i = j


def basis_class(basis: str) -> str:
    """A decision's basis as history tells it apart (a hold is still health)."""
    return "health" if basis in ("health", "hold") else basis
