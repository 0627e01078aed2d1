"""Several zones behind one adapter: each zone's names read from its own, without I/O."""

from __future__ import annotations

from collections.abc import Collection

from failover.config import parse_config
from failover.dns.ownership import Registry, marker_value
from failover.dns.zones import ZonedAdapter
from failover.health import initial_snapshot
from failover.plan import ManagedKey
from failover.reconcile import plan_step, read_actual
from failover.records import RecordSet
from policies import Overrides

R = RecordSet.make

CONFIG = """
zones:
  - {zone: example.test., provider: {type: none}}
  - {zone: billing.example.test., provider: {type: none}}
checks:
  web: {type: HTTP, port: 8080, request_interval: 1}
regions:
  us-east-1: {endpoints: [{address: 127.0.1.1, check: web}]}
records:
  - {name: api.example.test., type: A, ttl: 30, policy: failover, order: [us-east-1]}
"""


class Listed:
    """A zone in memory: it lists in full."""

    native_routing = False

    def __init__(self, *records: RecordSet) -> None:
        self.records = list(records)

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        if registry is not None:
            return registry.pick(self.records, keys)
        return [rs for rs in self.records if (rs.name, rs.type) in set(keys)]


def test_a_zone_whose_names_all_left_the_config_is_read_and_pruned() -> None:
    cfg = parse_config(CONFIG)
    old = "pay.billing.example.test."
    billing = Listed(R(old, "A", 30, ["127.0.1.2"]),
                     R(f"_failover.{old}", "TXT", 30, [marker_value("failover")]))
    # the parent still holds a marked name below the child's zone cut (from before the
    # delegation): not the parent's to prune, and the child's zone does not hold it
    below = "stale.billing.example.test."
    parent = Listed(R(below, "A", 30, ["127.0.1.3"]),
                    R(f"_failover.{below}", "TXT", 30, [marker_value("failover")]))
    adapter = ZonedAdapter({"example.test.": parent, "billing.example.test.": billing},
                           cfg.zone_of)
    actual = read_actual(cfg, adapter)
    step = plan_step(cfg, initial_snapshot(cfg, 0), Overrides(), {}, 0, actual)
    assert step.pruned == [old]
    assert {(c.action, c.record.name) for c in step.changes.changes if c.action == "delete"} == {
        ("delete", old), ("delete", f"_failover.{old}")}
