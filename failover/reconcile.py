"""One reconcile step without the write: decisions -> desired records -> ownership -> plan.

The CLI's `plan` and the controller's tick both use it, so that what `plan` shows is
exactly what the controller would write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from failover import plan as planning
from failover.dns.ownership import Claimed, claim, marker_keys
from failover.records import RecordSet
from policies import Decision, Overrides, decide_all, desired_records
from policies.native import native_desired

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter
    from failover.health import HealthSnapshot


@dataclass(frozen=True)
class Planned:
    """Everything one planning step saw and decided."""

    decisions: list[Decision]
    actual: list[RecordSet]
    claimed: Claimed
    changes: planning.ChangeSet
    violations: list[str] = field(default_factory=list)


def record_keys(cfg: Config) -> set[planning.ManagedKey]:
    """The (name, type) pairs the config manages."""
    return {(r.name, r.type) for r in cfg.records}


def read_keys(cfg: Config) -> set[planning.ManagedKey]:
    """What to read from DNS: the managed records and their ownership markers."""
    keys = record_keys(cfg)
    return keys | marker_keys(keys, cfg.ownership.marker_prefix)


def plan_step(cfg: Config, snapshot: HealthSnapshot, overrides: Overrides,
              previous: Mapping[tuple[str, str], Decision], now: float,
              actual: Sequence[RecordSet], *, ownership: bool = True,
              native: bool = False,
              decorate: Callable[[list[RecordSet]], list[RecordSet]] | None = None) -> Planned:
    """Decide every record, claim the names this controller owns, and diff against actual.

    `ownership=False` (provider none) plans the records alone, without markers;
    `native=True` (Route 53) plans one routing record per region instead of the answer;
    `decorate` adds provider-side attributes (Route 53 health check ids).
    """
    decisions = decide_all(cfg, snapshot, overrides, previous, now)
    desired = native_desired(cfg, decisions) if native else desired_records(decisions)
    if decorate is not None:
        desired = decorate(desired)
    keys = record_keys(cfg)
    if ownership:
        own = cfg.ownership
        claimed = claim(desired, actual, keys, owner=own.owner_id, prefix=own.marker_prefix,
                        take_over=own.take_over)
    else:
        claimed = Claimed(desired=desired, managed=frozenset(keys))
    changes = planning.diff(claimed.desired, actual, claimed.managed, zone=cfg.zone)
    violations = planning.violations(
        changes, actual, max_delete_share=cfg.plan.max_delete_share,
        min_existing=cfg.plan.min_existing,
        may_be_empty=[r.name for r in cfg.records if r.fail_mode == "closed"])
    return Planned(decisions, list(actual), claimed, changes, violations)


def read_actual(cfg: Config, adapter: Adapter | None) -> list[RecordSet]:
    """The actual managed records and markers, or none without an adapter."""
    return adapter.read(read_keys(cfg)) if adapter is not None else []
