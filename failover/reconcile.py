"""Reconciling desired against actual DNS, one name at a time, without I/O.

The `Ledger` keeps, per managed name, the record sets the decisions ask for and the
ones DNS holds, between ticks. A tick hands it the decisions that changed and plans only
the names whose answer moved; the full comparison of every name runs only after a full
read (start, refresh, conflict). Each name is planned on its own: its ownership marker,
its records and their changes, which travel together in one message. Nothing here
grows with the zone unless the zone changed.

A name this controller marked that is no longer in the config (an orphan: a full read
of the zone finds it with its marker) is a name whose desired state is nothing: with
`ownership.prune` its record sets and marker are deleted, counted all together in the
delete-share guard; without, it is kept and listed. Only a marker that is plainly this
owner's makes an orphan: names marked by others, or not marked, are never touched.

The CLI's `plan` and the controller use the same code (`plan_step` is a ledger filled
once and planned in full), so what `plan` shows is what the controller would write.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from failover import plan as planning
from failover.dns.ownership import (
    Registry,
    marker_keys,
    marker_name,
    marker_value,
    may_write,
    owners_of,
)
from failover.plan import Change, ChangeSet, ManagedKey
from failover.records import RECORD_TYPES, RecordSet
from policies import Decision, DecisionKey, Overrides, decide_all
from policies.native import native_records

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter
    from failover.health import HealthSnapshot

Decorate = Callable[[list[RecordSet]], list[RecordSet]]


@dataclass(frozen=True)
class Planned:
    """Everything one planning step saw and decided. `pruned`: the names no longer in
    the config whose record sets `changes` deletes; `kept`: those left in DNS
    (`ownership.prune: false`)."""

    decisions: list[Decision]
    changes: ChangeSet
    blocked: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    # names that hold records nobody marked, already as desired: `changes` writes only
    # their markers (ownership.adopt)
    adopted: list[str] = field(default_factory=list)


def record_keys(cfg: Config) -> set[ManagedKey]:
    """The (name, type) pairs the config manages."""
    return {(r.name, r.type) for r in cfg.records}


def registry(cfg: Config) -> Registry:
    """Where this controller's markers live and what they hold."""
    return Registry(cfg.ownership.marker_prefix, cfg.ownership.owner_id)


def read_keys(cfg: Config) -> set[ManagedKey]:
    """What to read from DNS: the managed records and their ownership markers."""
    keys = record_keys(cfg)
    return keys | marker_keys(keys, cfg.ownership.marker_prefix)


class Ledger:
    """Desired and actual record sets of every managed name, kept between ticks.

    `ownership=False` (provider none) plans the records alone, without markers;
    `native(name)` says whether the name's zone routes natively (Route 53: one record per
    region instead of the answer); `decorate` adds provider-side attributes.

    `actual` holds, per name, the record sets DNS holds: the managed names', and the
    orphans' (names plainly marked by this owner that are not in the config), which are
    its other keys.
    """

    def __init__(self, cfg: Config, *, ownership: bool = True,
                 native: Callable[[str], bool] = lambda _: False,
                 decorate: Decorate | None = None) -> None:
        self.cfg = cfg
        self.ownership = ownership
        self.native = native
        self.decorate = decorate
        own = cfg.ownership
        self.owner, self.prefix, self.take_over = own.owner_id, own.marker_prefix, own.take_over
        self.adopt = own.adopt
        self.prune = own.prune
        self.registry = Registry(self.prefix, self.owner)
        self.records = {(r.name, r.type): r for r in cfg.records}
        self.types: dict[str, list[str]] = {}
        for name, rtype in self.records:
            self.types.setdefault(name, []).append(rtype)
        self.may_be_empty = {r.name for r in cfg.records if r.fail_mode == "closed"}
        # zones served per client network from server-side views: every view holds the
        # name's answer for its network and a marker of its own
        self.view_zones = {z.zone: cfg.network_names for z in cfg.zone_specs
                           if getattr(z.provider, "views", None) and cfg.networks}
        self.geo = {n: _geo(cfg, n) for n in cfg.network_names}
        self.desired: dict[ManagedKey, tuple[RecordSet, ...]] = {}
        self.actual: dict[str, dict[tuple[str, str, str | None], RecordSet]] | None = None
        self.existing = 0  # managed record sets DNS holds (the delete-share guard's base)

    # ------------------------------------------------------------------ inputs

    def set_decisions(self, decisions: Iterable[Decision]) -> set[str]:
        """Take decisions in (with networks, every network's decision of a record
        together); return the names whose desired record sets changed."""
        changed: list[tuple[ManagedKey, tuple[RecordSet, ...]]] = []
        if self.cfg.networks:
            grouped: dict[ManagedKey, list[RecordSet]] = {}
            native = self.native
            for d in decisions:
                if not d.values:
                    grouped.setdefault((d.name, d.type), [])
                    continue
                # one answer per network: a view's (set identifier: the network), or a
                # Route 53 geolocation record's
                rs = RecordSet(d.name, d.type, d.network, d.ttl, d.values,
                               geo=self.geo[d.network] if native(d.name) else None)
                grouped.setdefault((d.name, d.type), []).append(rs)
            desired = self.desired
            changed = [(k, want) for k, sets in grouped.items()
                       if desired.get(k) != (want := tuple(sets))]
        else:
            for d in decisions:
                want = self._desired_of(d)
                if self.desired.get(d.record_key) != want:
                    changed.append((d.record_key, want))
        if changed and self.decorate is not None:
            flat = self.decorate([rs for _, sets in changed for rs in sets])
            by_key: dict[ManagedKey, list[RecordSet]] = {}
            for rs in flat:
                by_key.setdefault((rs.name, rs.type), []).append(rs)
            changed = [(k, tuple(by_key.get(k, ()))) for k, _ in changed]
        names = set()
        for key, want in changed:
            if self.desired.get(key) != want:
                self.desired[key] = want
                names.add(key[0])
        return names

    def _desired_of(self, d: Decision) -> tuple[RecordSet, ...]:
        if not d.values:
            return ()
        if d.network:
            # one answer per network: a view's (set identifier: the network), or a
            # Route 53 geolocation record's
            geo = self.geo[d.network] if self.native(d.name) else None
            return (RecordSet(name=d.name, type=d.type, ttl=d.ttl, values=d.values,
                              set_identifier=d.network, geo=geo),)
        if self.native(d.name):
            return tuple(native_records(self.cfg, self.records[d.record_key], d))
        # decisions hold canonical, sorted values and config names are canonical already
        return (RecordSet(name=d.name, type=d.type, ttl=d.ttl, values=d.values),)

    def set_actual(self, records: Iterable[RecordSet]) -> None:
        """What DNS holds now (a full read of the managed keys and markers, and of the
        names this owner marked outside the config when the read listed the zone)."""
        records = list(records)
        self.actual = {}
        self.existing = 0
        if self.ownership:
            for name in self.registry.orphans(records, self.records):
                self.actual[name] = {}
        for rs in records:
            self._put(rs)

    def _owner(self, name: str) -> str | None:
        """The name whose record sets `name`'s belongs with: a managed name or an orphan
        (its own, or the one its marker marks); None for anything else."""
        if name in self.types:
            return name
        if self.ownership and name.startswith(self.prefix + "."):
            marked = name[len(self.prefix) + 1:]
            if marked in self.types or (self.actual is not None and marked in self.actual):
                return marked
            return None
        if self.actual is not None and name in self.actual:
            return name  # an orphan
        return None

    def _put(self, rs: RecordSet) -> None:
        assert self.actual is not None
        owner = self._owner(rs.name)
        if owner is None:
            return
        if owner not in self.types and not (
                (rs.name == owner and rs.type in RECORD_TYPES)
                or (rs.name == marker_name(owner, self.prefix)
                    and self.registry.mine(rs) == owner)):
            return  # an orphan is its answer and its marker, plainly ours, nothing else
        sets = self.actual.setdefault(owner, {})
        if rs.key not in sets:
            self.existing += 1
        sets[rs.key] = rs

    def applied(self, changes: ChangeSet) -> None:
        """Fold a written ChangeSet into what DNS holds."""
        if self.actual is None:
            return
        for c in changes.changes:
            if c.action == "delete":
                owner = self._owner(c.record.name)
                sets = self.actual.get(owner, {}) if owner else {}
                if sets.pop(c.record.key, None) is not None:
                    self.existing -= 1
                if owner and not sets and owner not in self.types:
                    self.actual.pop(owner, None)  # an orphan pruned
            else:
                self._put(c.record)

    def actual_of(self, names: Iterable[str]) -> list[RecordSet]:
        """The managed record sets DNS holds for these names (markers included)."""
        actual = self.actual or {}
        return [rs for n in names for rs in actual.get(n, {}).values()]

    def actual_list(self) -> list[RecordSet]:
        """Every managed record set DNS holds, in zone order."""
        out = [rs for sets in (self.actual or {}).values() for rs in sets.values()]
        return sorted(out, key=lambda rs: rs.sort_key)

    # ------------------------------------------------------------------ planning

    @property
    def names(self) -> list[str]:
        """Every managed name, in config order."""
        return list(self.types)

    def orphans(self) -> list[str]:
        """The names this owner marked that are no longer in the config, in zone order.
        A walk of what DNS holds: only plans of all names, or with orphans in, ask."""
        return sorted(n for n in self.actual or {} if n not in self.types)

    def plan(self, names: Iterable[str] | None = None) -> Planned:
        """The changes that make the given names (default: all, orphans included) as
        desired, with the names left alone and the guards they break. Decisions are not
        part of it."""
        selected = list(dict.fromkeys([*self.types, *self.orphans()] if names is None
                                      else names))
        changes: list[Change] = []
        blocked: dict[str, str] = {}
        emptied: list[str] = []
        managed: set[ManagedKey] = set()
        pruned: list[str] = []
        kept: list[str] = []
        adopted: list[str] = []
        mine_value = (marker_value(self.owner),)
        for name in selected:
            types = self.types.get(name)
            if types is None:
                have = (self.actual or {}).get(name)
                if have:  # an orphan: its desired state is nothing
                    if not self.prune:
                        kept.append(name)
                        continue
                    pruned.append(name)
                    managed |= {k[:2] for k in have}
                    changes += _diff([], have)
                continue
            have = (self.actual or {}).get(name, {})
            views = self._views(name)
            adopting = False
            if self.ownership:
                mname = self.prefix + "." + name
                why = None
                for view in views:
                    marker = have.get((mname, "TXT", view))
                    if marker is None or marker.values != mine_value:  # not plainly ours
                        # without views, routing record sets (Route 53: one per
                        # region, by set identifier) occupy the name as a plain one does
                        occupied = [t for t in types if any(
                            k[:2] == (name, t) and (view is None or k[2] == view)
                            for k in have)]
                        owners = owners_of(marker)
                        why = may_write(name, owners, occupied, owner=self.owner,
                                        take_over=self.take_over)
                        if why is not None and self.adopt and not owners and marker is None:
                            adopting, why = True, None  # unmarked: adopted if already as desired
                        if why is not None:
                            why = f"{why} (view {view})" if view else why
                            break
                if why is not None:
                    blocked[name] = why
                    continue
            want = [rs for t in types for rs in self.desired.get((name, t), ())]
            keys = {(name, t) for t in types}
            if self.ownership:
                ttl = min((r.ttl for r in want), default=300)
                want += [RecordSet(name=mname, type="TXT", ttl=ttl, values=mine_value,
                                   set_identifier=view) for view in views]
                keys.add((mname, "TXT"))
            diff = _diff(want, have)
            if adopting:
                other = [c for c in diff if not (c.action == "create"
                                                 and c.record.name == mname)]
                if other:
                    blocked[name] = _not_adopted(other)
                    continue
                adopted.append(name)
            managed |= keys
            changes += diff
            if diff and name not in self.may_be_empty and _emptied(name, types, have, diff,
                                                                   self.cfg.network_names):
                emptied.append(name)
        cs = ChangeSet(zone=self.cfg.zone, changes=tuple(changes), existing=self.existing,
                       managed=frozenset(managed), marker_prefix=self.prefix)
        violations = [f"{n} would be left with no answer" for n in sorted(emptied)]
        guarded = cs
        if pruned:
            # pruning is judged as a whole, not per part: removing most of the config
            # must be refused even when its deletes are planned a chunk at a time
            rest = set(self.orphans()) - set(pruned)
            others = [Change("delete", rs) for n in sorted(rest)
                      for rs in (self.actual or {})[n].values()]
            guarded = cs.only([*cs.changes, *others])
        share = planning.share_violations(guarded, max_delete_share=self.cfg.plan.max_delete_share,
                                          min_existing=self.cfg.plan.min_existing)
        if share and pruned:
            left = len(self.orphans())
            share = [f"{v}, {left} name(s) among them no longer in the config: nothing is "
                     "pruned (check the config; ownership.prune: false keeps such names, "
                     "--force deletes them)" for v in share]
        violations += share
        return Planned([], cs, blocked, violations, pruned, kept, adopted)

    def _views(self, name: str) -> tuple[str | None, ...]:
        """The views a name is served from (its zone's networks), (None,) for one answer."""
        if not self.view_zones:
            return (None,)
        if self.cfg.zones is None:
            return self.view_zones.get(self.cfg.zone) or (None,)
        return self.view_zones.get(self.cfg.zone_of(name) or "") or (None,)

    def drifted(self) -> list[str]:
        """The names whose DNS differs from what is desired (a full comparison), those
        it may not write included: the caller learns of them when it plans them."""
        planned = self.plan()
        return list(dict.fromkeys([*(self._owner(c.record.name) or c.record.name
                                     for c in planned.changes.changes), *planned.blocked]))


def _not_adopted(changes: Sequence[Change]) -> str:
    """Why an unmarked name is not adopted: what writing it would change."""
    c = changes[0]
    rs = c.record
    where = f"{rs.type}" + (f" {rs.set_identifier}" if rs.set_identifier else "")
    if c.action == "create":
        what = f"{where} {','.join(rs.values)} would be created"
    elif c.action == "delete":
        what = f"{where} {','.join(rs.values)} would be deleted"
    else:
        before = c.before
        assert before is not None
        diffs = [f"{attr} {getattr(before, attr)} -> {getattr(rs, attr)}"
                 for attr in ("values", "ttl", "weight", "region", "failover", "health_check_id")
                 if getattr(before, attr) != getattr(rs, attr)]
        what = f"{where} would change ({'; '.join(diffs)})"
    more = f" and {len(changes) - 1} more change(s)" if len(changes) > 1 else ""
    return (f"holds records nobody marked that differ from the config: {what}{more}; "
            "ownership.adopt writes only markers (make the config match, or set "
            "ownership.take_over to write it)")


def _geo(cfg: Config, network: str) -> tuple[tuple[str, str], ...]:
    """A network's Route 53 location: its route53 setting, `*` (every other client) for
    default."""
    loc = cfg.networks[network].route53
    if loc is None:
        return (("CountryCode", "*"),)
    return tuple(loc.as_route53().items())


def _diff(want: Sequence[RecordSet], have: Mapping[tuple[str, str, str | None], RecordSet]
          ) -> list[Change]:
    """One name's changes: deletes, then replacements, then creates, each in key order."""
    wanted = {rs.key: rs for rs in want}
    order = planning.order
    deletes = [Change("delete", have[k]) for k in sorted(have.keys() - wanted.keys(), key=order)]
    upserts = [Change("upsert", wanted[k], have[k])
               for k in sorted(wanted.keys() & have.keys(), key=order) if wanted[k] != have[k]]
    creates = [Change("create", wanted[k]) for k in sorted(wanted.keys() - have.keys(), key=order)]
    return [*deletes, *upserts, *creates]


def _emptied(name: str, types: Collection[str], have: Mapping[tuple[str, str, str | None],
             RecordSet], changes: Sequence[Change],
             networks: Collection[str] = ()) -> bool:
    """Whether a name that answers now would answer nothing after `changes`: with client
    `networks`, whether any network's answer (its view's, its location's) would."""
    answering = {k for k in have if k[0] == name and k[1] in types}
    if not answering:
        return False
    for c in changes:
        if c.record.name == name:
            if c.action == "delete":
                answering.discard(c.record.key)
            else:
                answering.add(c.record.key)
    was = {k[2] for k in have if k[0] == name and k[1] in types and k[2] in networks}
    if was:  # a network that answered now would not (sets of before networks aside)
        return bool(was - {k[2] for k in answering})
    return not answering


def plan_step(cfg: Config, snapshot: HealthSnapshot, overrides: Overrides,
              previous: Mapping[DecisionKey, Decision], now: float,
              actual: Sequence[RecordSet], *, ownership: bool = True,
              native: bool | Callable[[str], bool] = False,
              decorate: Decorate | None = None) -> Planned:
    """Decide every record, claim the names this controller owns, and diff against actual.

    `native` (Route 53: one routing record per region instead of the answer) is a flag
    or a function of the name (several zones, several providers).
    """
    decisions = decide_all(cfg, snapshot, overrides, previous, now)
    ledger = Ledger(cfg, ownership=ownership,
                    native=native if callable(native) else (lambda _: bool(native)),
                    decorate=decorate)
    ledger.set_actual(actual)
    ledger.set_decisions(decisions)
    planned = ledger.plan()
    return Planned(decisions, planned.changes, planned.blocked, planned.violations,
                   planned.pruned, planned.kept, planned.adopted)


def read_actual(cfg: Config, adapter: Adapter | None) -> list[RecordSet]:
    """The actual managed records and markers, and the names this controller marked that
    left the config (when the adapter can list the zone); none without an adapter."""
    if adapter is None:
        return []
    return adapter.read(read_keys(cfg), registry=registry(cfg))
