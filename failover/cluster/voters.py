"""Which live views count: those of the vantages the config names, that can be read.

Any key under `<prefix>/live/vantages/` looks like a vantage to the fleet, and whoever
can write under the prefix can add one. So a view counts only when its vantage is in
`controller.cluster.vantages` (the fleet's own instances) and it parses whole; every
other one is left out of the vote and named: in /status, in /readyz (degraded) and, once
when it appears and once when it goes, in the log and the history.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from failover.cluster.views import BadView, View, parse

if TYPE_CHECKING:
    from failover.cluster.etcd import KV

SHOWN = 5  # vantages named one by one in a log line or /readyz; the rest are counted


@dataclass(frozen=True)
class Note:
    """A change among the views left out, to log at `level` and put in the history."""

    level: int  # logging.ERROR, WARNING or INFO
    vantage: str
    message: str
    refused: bool  # a view is left out from now on (False: one left out is gone or fixed)


class Voters:
    """Sorts the live views by vantage into those that count and those left out; a view is
    parsed once per revision."""

    def __init__(self, prefix: str) -> None:
        self.where = f"{prefix.rstrip('/')}/live/vantages/"
        self.counted: dict[str, tuple[int, View]] = {}  # vantage -> (revision, its view)
        self.unknown: dict[str, str] = {}  # vantage -> who published it (not on the list)
        self.malformed: dict[str, str] = {}  # vantage -> why its view cannot be read
        self._parsed: dict[str, tuple[int, View | BadView]] = {}
        self._summed: dict[str, int] = {}  # kind -> how many left out before it is summed up

    def sort(self, live: Mapping[str, KV], allowed: Collection[str] | None) -> list[Note]:
        """Take the live views (vantage -> its key); `allowed` is the allow-list (None:
        every vantage). Returns what changed among the views left out."""
        counted: dict[str, tuple[int, View]] = {}
        unknown: dict[str, str] = {}
        malformed: dict[str, str] = {}
        parsed: dict[str, tuple[int, View | BadView]] = {}
        for vantage, kv in live.items():
            held = self._parsed.get(vantage)
            if held is None or held[0] != kv.mod_revision:
                try:
                    held = (kv.mod_revision, parse(kv.value))
                except BadView as exc:
                    held = (kv.mod_revision, exc)
            parsed[vantage] = held
            view = held[1]
            if allowed is not None and vantage not in allowed:
                unknown[vantage] = (f"host {view.host!r}, PID {view.pid}"
                                    if isinstance(view, View) else "its view cannot be read")
            elif isinstance(view, BadView):
                malformed[vantage] = str(view)
            else:
                counted[vantage] = (held[0], view)
        notes = self._changes(unknown, malformed, counted)
        self._parsed, self.counted, self.unknown, self.malformed = (parsed, counted, unknown,
                                                                     malformed)
        return notes

    def _changes(self, unknown: dict[str, str], malformed: dict[str, str],
                 counted: dict[str, tuple[int, View]]) -> list[Note]:
        """The views left out from now on, named one by one up to SHOWN of a kind, then
        summed up each time their number doubles (someone writing keys by the thousand
        fills neither the log nor the history); and those gone or counted again."""
        notes = []
        kinds = (("unknown", unknown, self.unknown, logging.ERROR, self._unknown_text,
                  "vantages not in controller.cluster.vantages publish views"),
                 ("malformed", malformed, self.malformed, logging.WARNING,
                  self._malformed_text, "views cannot be read"))
        for kind, now, before, level, say, many in kinds:
            if not now:
                self._summed.pop(kind, None)
            fresh = sorted(set(now) - set(before))  # new ones (a rewrite is no news)
            for i, vantage in enumerate(fresh):
                if len(before) + i < SHOWN:
                    notes.append(Note(level, vantage, say(vantage, now[vantage]), True))
            if len(now) > SHOWN and len(now) >= self._summed.get(kind, 2 * SHOWN) and fresh:
                self._summed[kind] = 2 * len(now)
                notes.append(Note(level, "", f"{len(now)} {many} now (the first {SHOWN} "
                                  f"named one by one, every one in /status): not counted", True))
        back = sorted((set(self.unknown) | set(self.malformed)) - set(unknown) - set(malformed))
        for vantage in back[:SHOWN]:
            again = "is counted again" if vantage in counted else "no longer publishes a view"
            notes.append(Note(logging.INFO, vantage,
                              f"vantage {shown(vantage)}, left out of the vote, {again}", False))
        if len(back) > SHOWN:
            notes.append(Note(logging.INFO, "", f"and {len(back) - SHOWN} more vantages left "
                              "out of the vote are gone or counted again", False))
        return notes

    def _unknown_text(self, vantage: str, who: str) -> str:
        return (f"vantage {shown(vantage)} ({who}) publishes a view at "
                f"{self.where}{shown(vantage)[1:-1]} but is not in controller.cluster.vantages: "
                "it is not counted (whoever wrote it can write to etcd under the fleet's "
                "prefix)")

    def _malformed_text(self, vantage: str, why: str) -> str:
        return (f"the view at {self.where}{shown(vantage)[1:-1]} cannot be read ({why}): it "
                "is not counted")

    def problem(self) -> str | None:
        """Why the fleet's vote is not what the config says (for /readyz); None when every
        live view counts."""
        parts = []
        if self.unknown:
            parts.append(f"{len(self.unknown)} vantage(s) not in controller.cluster.vantages "
                         f"publish views and are not counted: {listed(list(self.unknown))} "
                         "(whoever wrote them can write to etcd under the fleet's prefix: see "
                         "docs/ha.md, Who can change what)")
        if self.malformed:
            parts.append(f"{len(self.malformed)} view(s) cannot be read and are not counted: "
                         + listed({v: f"{shown(v)} ({why})" for v, why in self.malformed.items()}))
        return "; ".join(parts) or None


def shown(vantage: str) -> str:
    """A vantage name as text shows it: quoted, escaped, at most 100 characters (names
    come from etcd keys that anyone who can write there chooses)."""
    return repr(vantage[:100])


def listed(names: Mapping[str, str] | Collection[str]) -> str:
    """The first few names (or their texts, for a mapping), and how many more."""
    keys = sorted(names)
    texts = [names[k] if isinstance(names, Mapping) else shown(k) for k in keys[:SHOWN]]
    return ", ".join(texts) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")
