"""Ownership markers: a TXT record that says which controller owns a name (as in
ExternalDNS's TXT registry), shared by every adapter.

The marker sits at `<prefix>.<name>` (a TXT cannot sit beside a CNAME at the name
itself) and holds `"heritage=failover,owner=<owner_id>"`. The controller writes only
names it owns, or names with nothing on them, which it then marks. A name marked by
another owner, or holding records nobody marked, is left alone unless taking it over
is allowed explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from failover.plan import ManagedKey
from failover.records import RecordSet

HERITAGE = re.compile(r'"heritage=failover,owner=([^"]*)"')


def marker_name(name: str, prefix: str) -> str:
    """Where the marker of `name` lives."""
    return f"{prefix}.{name}"


def marker_value(owner: str) -> str:
    """The TXT value (presentation form, quoted) that marks `owner`."""
    return f'"heritage=failover,owner={owner}"'


def marker_keys(keys: Iterable[ManagedKey], prefix: str) -> set[ManagedKey]:
    """The marker keys for the names among `keys`."""
    return {(marker_name(name, prefix), "TXT") for name, _ in keys}


@dataclass(frozen=True)
class Claimed:
    """What the controller may write: desired records plus markers, the keys the plan may
    touch, and the names it leaves alone with the reason."""

    desired: list[RecordSet]
    managed: frozenset[ManagedKey]
    blocked: dict[str, str] = field(default_factory=dict)


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
    return (f"holds {', '.join(sorted(occupied))} records that failover did not "
            "create (set ownership.take_over to take them over)")


def marker_record(name: str, prefix: str, owner: str, ttl: int) -> RecordSet:
    """The marker record set of `name` for `owner`."""
    return RecordSet.make(marker_name(name, prefix), "TXT", ttl, [marker_value(owner)])


def claim(desired: Iterable[RecordSet], actual: Iterable[RecordSet],
          record_keys: Collection[ManagedKey], *, owner: str, prefix: str,
          take_over: bool = False) -> Claimed:
    """Decide which managed names this controller may write and add their markers.

    Linear in the number of names and record sets.
    """
    have = {(r.name, r.type): r for r in actual}
    want: dict[str, list[RecordSet]] = {}
    for r in desired:
        want.setdefault(r.name, []).append(r)
    types: dict[str, list[str]] = {}
    for n, t in record_keys:
        types.setdefault(n, []).append(t)
    blocked: dict[str, str] = {}
    out: list[RecordSet] = []
    managed: set[ManagedKey] = set()
    for name in sorted(types):
        occupied = [t for t in types[name] if (name, t) in have]
        why = may_write(name, owners_of(have.get((marker_name(name, prefix), "TXT"))), occupied,
                        owner=owner, take_over=take_over)
        if why is not None:
            blocked[name] = why
            continue
        mine = want.get(name, [])
        out.extend(mine)
        out.append(marker_record(name, prefix, owner, min((r.ttl for r in mine), default=300)))
        managed.update((name, t) for t in types[name])
        managed.add((marker_name(name, prefix), "TXT"))
    return Claimed(desired=out, managed=frozenset(managed), blocked=blocked)
