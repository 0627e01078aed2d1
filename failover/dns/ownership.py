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
