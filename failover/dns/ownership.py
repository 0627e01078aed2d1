"""Ownership markers: a TXT record that says which controller owns a name (as in
ExternalDNS's TXT registry), shared by every adapter.

The marker sits at `<prefix>.<name>` (a TXT cannot sit beside a CNAME at the name
itself) and holds `"heritage=failover,owner=<owner_id>"`. The controller writes only
names it owns, or names with nothing on them, which it then marks. A name marked by
another owner, or holding records nobody marked, is left alone unless taking it over
is allowed explicitly.

A name this controller marked that has left the config (an orphan) is found by a read
that lists the whole zone: the `Registry` picks, from such a listing, the markers that
are plainly this owner's and the A/AAAA/CNAME record sets of the names they mark.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from failover.plan import ManagedKey
from failover.records import RECORD_TYPES, RecordSet

HERITAGE = re.compile(r'"heritage=failover,owner=([^"]*)"')


def marker_name(name: str, prefix: str) -> str:
    """Where the marker of `name` lives."""
    return f"{prefix}.{name}"


def marker_value(owner: str) -> str:
    """The TXT value (presentation form, quoted) that marks `owner`."""
    return f'"heritage=failover,owner={owner}"'


def marked_name(name: str, prefix: str) -> str | None:
    """The name a marker at `name` marks; None when `name` is no marker's name."""
    head = prefix + "."
    return name[len(head):] if name.startswith(head) and len(name) > len(head) else None


def marker_keys(keys: Iterable[ManagedKey], prefix: str) -> set[ManagedKey]:
    """The marker keys for the names among `keys`."""
    return {(marker_name(name, prefix), "TXT") for name, _ in keys}


def owners_of(marker: RecordSet | None) -> set[str]:
    """The owner ids a marker record set names."""
    return {m.group(1) for v in (marker.values if marker else ()) for m in [HERITAGE.match(v)]
            if m}


def may_write(name: str, owners: set[str], occupied: Collection[str], *, owner: str,
              take_over: bool) -> str | None:
    """Why this controller may not write `name` (None: it may). `owners` are the owners
    its marker names; `occupied` the managed types that hold records now."""
    if owner in owners or (not owners and not occupied) or take_over:
        return None
    if owners:
        return (f"owned by controller '{', '.join(sorted(owners))}' "
                "(set ownership.take_over to take it over)")
    return (f"holds {', '.join(sorted(occupied))} records but no failover marker (the "
            "TXT at the marker name was never written, or was deleted by hand or by a "
            "sync tool's prune): restore the marker, or set ownership.take_over")


@dataclass(frozen=True)
class Registry:
    """Where this controller's markers live and what they hold: what a read needs to
    find the names it marked that are not in the config."""

    prefix: str
    owner: str

    def mine(self, marker: RecordSet) -> str | None:
        """The name `marker` marks when it is plainly this owner's marker (one TXT value,
        exactly ours); None otherwise (another owner's, several owners, no marker)."""
        if marker.type != "TXT" or marker.values != (marker_value(self.owner),):
            return None
        return marked_name(marker.name, self.prefix)

    def owner_of(self, name: str) -> str:
        """The name whose record sets `name`'s go with: the marked name for a marker."""
        return marked_name(name, self.prefix) or name

    def orphans(self, listing: Iterable[RecordSet], keys: Collection[ManagedKey]) -> set[str]:
        """The names outside `keys` that a marker in `listing` plainly marks as this
        owner's."""
        names = {n for n, _ in keys}
        return {n for rs in listing for n in [self.mine(rs)] if n and n not in names}

    def keys_of(self, names: Iterable[str]) -> set[ManagedKey]:
        """The keys a marked name may hold: its marker, its A, AAAA and CNAME."""
        return {k for n in names
                for k in [(marker_name(n, self.prefix), "TXT"), *((n, t) for t in RECORD_TYPES)]}

    def pick(self, listing: Sequence[RecordSet], keys: Collection[ManagedKey]
             ) -> list[RecordSet]:
        """From a listing of a whole zone: the record sets of `keys`, and those of the
        names this owner marked that are not among `keys` (their markers and their
        A/AAAA/CNAME record sets)."""
        wanted = set(keys) | self.keys_of(self.orphans(listing, keys))
        return [rs for rs in listing if (rs.name, rs.type) in wanted]
