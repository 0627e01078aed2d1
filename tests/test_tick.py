"""The controller's tick in process, against an adapter the test holds: races between a
slow DNS read and a health change."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from failover.controller import Controller
from failover.dns.base import ApplyReport
from failover.dns.ownership import Registry
from failover.plan import ChangeSet, ManagedKey
from failover.probes import ProbeResult
from failover.records import RecordSet
from failover.state.sqlite import SqliteState
from tests.builders import config


class HeldDns:
    """A zone in memory whose reads can be held (a DNS server slow to answer)."""

    native_routing = False

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], RecordSet] = {}
        self.release = threading.Event()
        self.release.set()
        self.reading = threading.Event()

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        self.reading.set()
        assert self.release.wait(timeout=30)
        if registry is not None:  # a zone in memory lists in full
            return registry.pick(list(self.records.values()), keys)
        return [rs for k, rs in self.records.items() if k in set(keys)]

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        for c in changes.changes:
            key = (c.record.name, c.record.type)
            if c.action == "delete":
                self.records.pop(key, None)
            else:
                self.records[key] = c.record
        return ApplyReport(changes=len(changes.changes), messages=1)

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        return [rs for k, rs in self.records.items() if k in set(keys)]

    def prepare(self) -> None:
        pass

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        return desired

    def answer(self) -> tuple[str, ...]:
        rs = self.records.get(("api.example.test.", "A"))
        return rs.values if rs else ()


def test_a_health_change_during_a_slow_read_is_decided(tmp_path: Path) -> None:
    cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}])
    dns = HeldDns()
    state = SqliteState(tmp_path / "state.db")
    clock = [1000.0]
    controller = Controller(cfg, state=state, adapter=dns, clock=lambda: clock[0])

    def probe(region_ok: dict[str, bool]) -> None:
        for target in controller.targets:
            ok = region_ok[target.endpoint.split("/", 1)[0]]
            controller.on_result(target, ProbeResult(ok, "ok" if ok else "refused", clock[0]))
            clock[0] += 0.1

    async def scenario() -> None:
        probe({"east": True, "west": True})
        assert controller.ready
        await controller.tick()
        assert dns.answer() == ("127.0.1.1",)
        controller.ledger.actual = None  # read again at the next tick (as after an error)
        dns.release.clear()
        dns.reading.clear()
        held = asyncio.ensure_future(controller.tick())
        assert await asyncio.to_thread(dns.reading.wait, 30)
        for _ in range(3):  # east fails while the read is held
            probe({"east": False, "west": True})
        dns.release.set()
        await held
        await controller.tick()
        assert dns.answer() == ("127.0.2.1",)

    try:
        asyncio.run(scenario())
    finally:
        state.close()
