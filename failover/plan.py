"""The plan: a pure diff of desired against actual records, safety guards, and renderings.

A ChangeSet is a value: it can be printed (table, JSON, Markdown), checked against the
guards and only then applied by an adapter. Only managed (name, type) pairs are ever
touched; anything else in the zone is invisible to the plan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from failover.records import RecordSet

Action = Literal["create", "upsert", "delete"]
ManagedKey = tuple[str, str]  # (name, type)


@dataclass(frozen=True)
class Change:
    """One write: `record` is the new record set (for delete, the one removed)."""

    action: Action
    record: RecordSet
    before: RecordSet | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {"action": self.action, **self.record.to_dict()}
        if self.before is not None and self.action == "upsert":
            out["before"] = self.before.to_dict()
        return out


@dataclass(frozen=True)
class ChangeSet:
    """The changes that turn the actual managed records into the desired ones.

    `existing` is how many managed record sets exist now (the base for the delete
    share guard).
    """

    zone: str
    changes: tuple[Change, ...] = ()
    existing: int = 0
    managed: frozenset[ManagedKey] = field(default_factory=frozenset)
    marker_prefix: str = ""  # a marker `<prefix>.<name>` travels with the changes of <name>

    def __bool__(self) -> bool:
        return bool(self.changes)

    def owner(self, name: str) -> str:
        """The name whose changes `name`'s changes travel with (its own, or for an
        ownership marker, the name it marks)."""
        if self.marker_prefix and name.startswith(self.marker_prefix + "."):
            return name[len(self.marker_prefix) + 1:]
        return name

    def groups(self) -> list[list[Change]]:
        """The changes by owner name, in plan order of first appearance: what must be
        written together (one message, one batch) so a name never ends half-changed."""
        out: dict[str, list[Change]] = {}
        for c in self.changes:
            out.setdefault(self.owner(c.record.name), []).append(c)
        return list(out.values())

    def only(self, changes: Iterable[Change]) -> ChangeSet:
        """The same plan restricted to `changes` (a part written on its own)."""
        return ChangeSet(zone=self.zone, changes=tuple(changes), existing=self.existing,
                         managed=self.managed, marker_prefix=self.marker_prefix)

    def count(self, action: Action) -> int:
        """How many changes of one kind."""
        return sum(1 for c in self.changes if c.action == action)

    def summary(self) -> str:
        """`3 changes: 2 create, 1 upsert, 0 delete` or `no changes`."""
        if not self.changes:
            return "no changes"
        n = len(self.changes)
        return (f"{n} change{'s' if n != 1 else ''}: {self.count('create')} create, "
                f"{self.count('upsert')} upsert, {self.count('delete')} delete")


def diff(desired: Iterable[RecordSet], actual: Iterable[RecordSet],
         managed: Collection[ManagedKey], zone: str = "") -> ChangeSet:
    """The ChangeSet that makes the managed part of `actual` equal `desired`.

    Record sets are matched by (name, type, set identifier); actual record sets outside
    `managed` are ignored. Desired record sets outside `managed` are a programming error
    (ValueError). Deletes come first, then upserts, then creates, each sorted, so that a
    batch never holds two record sets for one key at once.
    """
    managed_set = frozenset(managed)
    want: dict[tuple[str, str, str | None], RecordSet] = {}
    for rs in desired:
        if (rs.name, rs.type) not in managed_set:
            raise ValueError(f"desired record {rs.name} {rs.type} is not managed")
        want[rs.key] = rs
    have = {rs.key: rs for rs in actual if (rs.name, rs.type) in managed_set}
    deletes = [Change("delete", have[k]) for k in sorted(have.keys() - want.keys(), key=order)]
    upserts = [Change("upsert", want[k], have[k]) for k in sorted(want.keys() & have.keys(),
                                                                   key=order)
               if want[k] != have[k]]
    creates = [Change("create", want[k]) for k in sorted(want.keys() - have.keys(), key=order)]
    return ChangeSet(zone=zone, changes=(*deletes, *upserts, *creates), existing=len(have),
                     managed=managed_set)


def order(key: tuple[str, str, str | None]) -> tuple[str, str, str]:
    """Zone order of a record set key (name, type, set identifier; none first)."""
    return (key[0], key[1], key[2] or "")


def apply_to(actual: Iterable[RecordSet], changes: ChangeSet) -> list[RecordSet]:
    """What `actual` becomes once `changes` is applied: the model adapters must match."""
    state = {rs.key: rs for rs in actual}
    for c in changes.changes:
        if c.action == "delete":
            state.pop(c.record.key, None)
        else:
            state[c.record.key] = c.record
    return sorted(state.values(), key=lambda rs: rs.sort_key)


def share_violations(changes: ChangeSet, *, max_delete_share: float,
                     min_existing: int) -> list[str]:
    """The delete-share guard alone: no more than `max_delete_share` of the existing
    managed record sets deleted, once at least `min_existing` exist."""
    deletes = changes.count("delete")
    if changes.existing >= max(min_existing, 1) and deletes > max_delete_share * changes.existing:
        return [f"{deletes} of {changes.existing} managed record sets would be deleted "
                f"(more than max_delete_share {max_delete_share:.0%})"]
    return []


# ------------------------------------------------------------------------- renderings

_SIGN = {"create": "+", "upsert": "~", "delete": "-"}


def _routing(rs: RecordSet) -> str:
    parts = [f"{k}={v}" for k, v in (("set", rs.set_identifier), ("weight", rs.weight),
                                     ("region", rs.region), ("failover", rs.failover))
             if v is not None]
    if rs.geo:
        parts.append("geo=" + ",".join(f"{k.removesuffix('Code').lower()}:{v}" for k, v in rs.geo))
    return " ".join(parts)


def to_table(changes: ChangeSet) -> str:
    """A plain-text table for people, one line per change."""
    rows = [("", "NAME", "TYPE", "TTL", "VALUES", "ROUTING")]
    for c in changes.changes:
        r = c.record
        values = ",".join(r.values)
        if c.action == "upsert" and c.before is not None and c.before.values != r.values:
            values = f"{','.join(c.before.values)} -> {values}"
        rows.append((f"{_SIGN[c.action]} {c.action}", r.name, r.type, str(r.ttl), values,
                     _routing(r)))
    if len(rows) == 1:
        return changes.summary()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return "\n".join([*lines, changes.summary()])


def to_markdown(changes: ChangeSet) -> str:
    """A Markdown table, for CI comments."""
    if not changes.changes:
        return "_no changes_"
    lines = ["| action | name | type | ttl | values | routing |", "|---|---|---|---|---|---|"]
    for c in changes.changes:
        r = c.record
        values = "<br>".join(f"`{v}`" for v in r.values)
        if c.action == "upsert" and c.before is not None and c.before.values != r.values:
            values = "<br>".join(f"`{v}`" for v in c.before.values) + " &rarr; " + values
        lines.append(f"| {c.action} | `{r.name}` | {r.type} | {r.ttl} | {values} | "
                     f"{_routing(r)} |")
    lines.append("")
    lines.append(f"**{changes.summary()}**")
    return "\n".join(lines)


def to_json(changes: ChangeSet) -> dict[str, Any]:
    """A JSON-ready dict for scripts."""
    return {"zone": changes.zone, "changes": [c.to_dict() for c in changes.changes],
            "summary": {a: changes.count(a) for a in ("create", "upsert", "delete")},
            "existing": changes.existing}
