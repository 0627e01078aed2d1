"""History events -> notices (failover, failback, degraded, override, drill), and the
batches that coalesce them: pure, no I/O and no clock (times are passed in).

A decision that moved an answer away from a region that could not serve (unhealthy or
drained) is a failover away from it; one that moved an answer back to a region that
could not serve before is a failback to it. /readyz turning degraded and clearing is
`degraded`; an operator's drain or pin taking effect and being lifted is `override`; a
drill's override, and the answers it moves, is `drill`. Everything else in the history
is not told.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from failover.state.store import Event

NAMES_SHOWN = 5  # names a coalesced notice lists before "and N more"
EVENTS_KEPT = 3  # history events a coalesced notice carries for the webhook
MAX_ENTRIES = 100  # distinct notices a sink holds while it waits; more are dropped


@dataclass(frozen=True)
class Notice:
    """One thing to tell: its kind, what it is about, the sentence we have for why.

    `incident` names what it raises or clears (PagerDuty's dedup key, under the
    controller's owner id): `region/us-east-1`, `degraded`, `drain/us-east-1`;
    `resolve` is true when it clears it (a failback, degraded cleared, a drain lifted).
    """

    kind: str
    at: float
    subject: str
    message: str
    incident: str
    resolve: bool = False
    regions: tuple[str, ...] = ()
    event: Event | None = None


def _override_text(o: Mapping[str, Any], lifted: bool) -> tuple[str, str]:
    """(kind, sentence) of an override taking effect or lifted."""
    kind, target, region = o.get("kind"), o.get("target"), o.get("region")
    by = f" by {o.get('who')}" + (f": {o['why']}" if o.get("why") else "") if o.get("who") else ""
    if kind == "fault" or o.get("why") == "drill":
        how = "its checks made to fail" if kind == "fault" else "drained"
        return "drill", (f"drill of {region} ended" if lifted
                         else f"drill of {region} started{by} ({how})")
    if kind == "pin":
        return "override", (f"pin of {target} to {region} lifted" if lifted
                            else f"{target} pinned to {region}{by}")
    return "override", (f"{target} restored (drain lifted)" if lifted
                        else f"{target} drained{by}")


class Classifier:
    """Turns history events into notices; remembers the overrides in force (to tell
    what changed) and the regions under a drill (whose answers' moves are the drill)."""

    def __init__(self) -> None:
        self.in_force: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        self.drills: set[str] = set()  # regions a drill holds out
        self.drill_ending: set[str] = set()  # regions whose drill ended, until they return

    def notices(self, e: Event) -> list[Notice]:
        """The notices one history event makes (most make none)."""
        if e.kind == "decision":
            return self._decision(e)
        if e.kind == "override" and "in_force" in e.detail:
            return self._overrides(e)
        if e.kind == "controller" and e.subject == "readiness":
            degraded = bool(e.detail.get("degraded"))
            said = "; ".join(e.detail.get("problems") or ()) or e.message
            return [Notice("degraded", e.at, "controller", said, "degraded",
                           resolve=not degraded, event=e)]
        return []

    def _decision(self, e: Event) -> list[Notice]:
        left = list(e.detail.get("left") or ())
        if left:
            out = []
            for r in left:
                kind = "drill" if r in self.drills else "failover"
                out.append(Notice(kind, e.at, e.subject, e.message, f"region/{r}", False, (r,),
                                  e))
            return out
        out = []
        for r in e.detail.get("returned") or ():
            kind = "failback"
            if r in self.drills or r in self.drill_ending:
                kind = "drill"
                self.drill_ending.discard(r)
            out.append(Notice(kind, e.at, e.subject, e.message, f"region/{r}", True, (r,), e))
        return out

    def _overrides(self, e: Event) -> list[Notice]:
        now = {(o.get("kind"), o.get("target"), o.get("at")): o
               for o in e.detail.get("in_force", ())}
        out = []
        for key, o in now.items():
            if key not in self.in_force:
                kind, text = _override_text(o, lifted=False)
                if kind == "drill":
                    self.drills.add(str(o.get("region")))
                out.append(Notice(kind, e.at, str(o.get("target")), text,
                                  f"{o.get('kind')}/{o.get('target')}", False,
                                  (str(o.get("region")),), e))
        for key, o in self.in_force.items():
            if key not in now:
                kind, text = _override_text(o, lifted=True)
                if kind == "drill":
                    region = str(o.get("region"))
                    self.drills.discard(region)
                    self.drill_ending.add(region)
                out.append(Notice(kind, e.at, str(o.get("target")), text,
                                  f"{o.get('kind')}/{o.get('target')}", True,
                                  (str(o.get("region")),), e))
        self.in_force = now
        return out


@dataclass
class Entry:
    """Notices of one kind about one incident, coalesced: the count, the first names,
    the first sentence of why, the first few history events."""

    kind: str
    incident: str
    resolve: bool
    regions: tuple[str, ...]
    message: str
    first_at: float
    last_at: float
    seq: int  # order of the latest notice in the batch (the last word on an incident)
    count: int = 0
    names: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def add(self, n: Notice, seq: int) -> None:
        self.count += 1
        self.last_at, self.seq = n.at, seq
        if len(self.names) < NAMES_SHOWN and n.subject not in self.names:
            self.names.append(n.subject)
        if n.event is not None and len(self.events) < EVENTS_KEPT:
            self.events.append(n.event)


class Batch:
    """What one sink will say in its next message: entries in the order they came,
    bounded (MAX_ENTRIES), with the notices it could not hold counted."""

    def __init__(self, opened: float) -> None:
        self.opened = opened  # when its first notice came (monotonic seconds)
        self.entries: dict[tuple[str, str, bool], Entry] = {}
        self.seq = 0
        self.count = 0  # notices held (coalesced into entries)
        self.dropped = 0  # notices beyond MAX_ENTRIES distinct entries

    def add(self, n: Notice) -> bool:
        """Coalesce a notice into its entry; False (and counted) when the batch is full."""
        key = (n.kind, n.incident, n.resolve)
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= MAX_ENTRIES:
                self.dropped += 1
                return False
            entry = self.entries[key] = Entry(n.kind, n.incident, n.resolve, n.regions,
                                              n.message, n.at, n.at, 0)
        self.seq += 1
        self.count += 1
        entry.add(n, self.seq)
        return True

    def ordered(self) -> list[Entry]:
        """The entries in the order they came."""
        return list(self.entries.values())

    def last_word(self) -> list[Entry]:
        """Per incident, the entry said last (a region that failed over and came back
        within the batch ends resolved): what PagerDuty is sent."""
        last: dict[str, Entry] = {}
        for e in self.entries.values():
            if e.incident not in last or e.seq > last[e.incident].seq:
                last[e.incident] = e
        return sorted(last.values(), key=lambda e: e.seq)
