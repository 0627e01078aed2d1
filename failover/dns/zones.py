"""Several zones behind one adapter: each name goes to the adapter of its zone.

A config with `zones:` has one adapter per zone (each with its own provider: BIND for
one, Route 53 for another). `ZonedAdapter` keeps the one-adapter contract for the
controller: reads and confirmations are split by zone, a ChangeSet is split into one
per zone (a name and its marker always share a zone), and routing is native or resolved
per zone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from failover.dns.base import ApplyReport, DnsError
from failover.plan import Change, ChangeSet, ManagedKey
from failover.records import RecordSet

if TYPE_CHECKING:
    from failover.dns.base import Adapter
    from failover.dns.ownership import Registry


class ZonedAdapter:
    """One adapter per zone, addressed by the longest zone suffix of each name."""

    native_routing = False  # per zone: see native_for

    def __init__(self, adapters: dict[str, Adapter], zone_of: Callable[[str], str | None]) -> None:
        self.adapters = adapters
        self.zone_of = zone_of
        self.zone = next(iter(adapters))

    def _split(self, keys: Collection[ManagedKey]) -> dict[str, set[ManagedKey]]:
        out: dict[str, set[ManagedKey]] = {z: set() for z in self.adapters}
        for key in keys:
            z = self.zone_of(key[0])
            if z in out:
                out[z].add(key)
        return out

    def native_for(self, name: str) -> bool:
        """Whether the zone of `name` routes natively (Route 53)."""
        adapter = self.adapters.get(self.zone_of(name) or "")
        return adapter is not None and adapter.native_routing

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """Each zone's record sets, read from its own provider; with a `registry`, every
        zone is read (one whose names all left the config still holds them), and a zone
        gives only its own names (not what a parent holds below a child's zone cut)."""
        if registry is None:
            return [rs for z, mine in self._split(keys).items() if mine
                    for rs in self.adapters[z].read(mine)]
        return [rs for z, mine in self._split(keys).items()
                for rs in self.adapters[z].read(mine, registry)
                if self.zone_of(registry.owner_of(rs.name)) == z]

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """What each zone's server answers for its keys."""
        return [rs for z, mine in self._split(keys).items() if mine
                for rs in self.adapters[z].served(mine)]

    def serial(self) -> int | None:
        """A value that moves when any zone's SOA serial moves (None: unknown)."""
        serials = []
        for adapter in self.adapters.values():
            ask = getattr(adapter, "serial", None)
            value = ask() if ask is not None else None
            if value is None:
                return None
            serials.append(value)
        return hash(tuple(serials))

    def prepare(self) -> None:
        """Every zone's provider prepares."""
        for adapter in self.adapters.values():
            adapter.prepare()

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """Each zone's provider decorates its own record sets."""
        by_zone: dict[str | None, list[RecordSet]] = {}
        for rs in desired:
            by_zone.setdefault(self.zone_of(rs.name), []).append(rs)
        out = []
        for z, sets in by_zone.items():
            adapter = self.adapters.get(z or "")
            out += adapter.decorate(sets) if adapter is not None else sets
        return out

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Apply each zone's part with its provider; every zone is tried, and the first
        error is raised after the others were written."""
        parts: dict[str, list[Change]] = {}
        for c in changes.changes:
            z = self.zone_of(changes.owner(c.record.name))
            if z in self.adapters:
                parts.setdefault(z, []).append(c)
        report = ApplyReport(changes=len(changes.changes))
        error: DnsError | None = None
        for z, mine in parts.items():
            part = ChangeSet(zone=z, changes=tuple(mine), existing=changes.existing,
                             managed=changes.managed, marker_prefix=changes.marker_prefix)
            try:
                r = self.adapters[z].apply(part, [rs for rs in actual if self.zone_of(rs.name) == z])
            except DnsError as exc:
                error = error or exc
                continue
            report.messages += r.messages
            report.applied_s += r.applied_s
            report.confirmed_s += r.confirmed_s
            report.notes += [f"{z}: {n}" for n in r.notes]
            report.rejected.update(r.rejected)
        if error is not None:
            raise error
        return report
