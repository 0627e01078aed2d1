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


def claim(desired: Iterable[RecordSet], actual: Iterable[RecordSet],
          record_keys: Collection[ManagedKey], *, owner: str, prefix: str,
          take_over: bool = False) -> Claimed:
    """Decide which managed names this controller may write and add their markers."""
    have = {(r.name, r.type): r for r in actual}
    want = list(desired)
    names = sorted({n for n, _ in record_keys})
    blocked: dict[str, str] = {}
    writable: set[str] = set()
    for name in names:
        mark = have.get((marker_name(name, prefix), "TXT"))
        owners = {m.group(1) for v in (mark.values if mark else ()) for m in [HERITAGE.match(v)]
                  if m}
        occupied = [t for n, t in record_keys if n == name and (n, t) in have]
        if owner in owners or (not owners and not occupied) or take_over:
            writable.add(name)
        elif owners:
            blocked[name] = (f"owned by controller '{', '.join(sorted(owners))}' "
                             "(set ownership.take_over to take it over)")
        else:
            blocked[name] = (f"holds {', '.join(sorted(occupied))} records that failover did not "
                             "create (set ownership.take_over to take them over)")
    out = [r for r in want if r.name in writable]
    for name in sorted(writable):
        ttls = [r.ttl for r in want if r.name == name]
        out.append(RecordSet.make(marker_name(name, prefix), "TXT", min(ttls, default=300),
                                  [marker_value(owner)]))
    managed = {k for k in record_keys if k[0] in writable}
    managed |= {(marker_name(n, prefix), "TXT") for n in writable}
    return Claimed(desired=out, managed=frozenset(managed), blocked=blocked)
