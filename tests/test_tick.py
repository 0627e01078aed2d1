"""The controller's tick in process, against an adapter the test holds: races between a
slow DNS read and a health change."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pytest

from failover.config import Config
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


class ConflictingDns(HeldDns):
    """A zone whose writes are refused as conflicts while `conflict` is set (a provider
    that keeps answering "already exists")."""

    def __init__(self) -> None:
        super().__init__()
        self.conflict = True
        self.writes = 0

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        from failover.dns.base import DnsConflict

        self.writes += 1
        if self.conflict:
            raise DnsConflict("example.test. changed since it was read (Tried to create "
                              "resource record set but it already exists)")
        return super().apply(changes, actual)


def test_the_same_conflict_again_and_again_backs_off_and_degrades(tmp_path: Path) -> None:
    cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}])
    dns = ConflictingDns()
    state = SqliteState(tmp_path / "state.db")
    clock = [1000.0]
    controller = Controller(cfg, state=state, adapter=dns, clock=lambda: clock[0])

    async def scenario() -> None:
        for target in controller.targets:
            controller.on_result(target, ProbeResult(True, "ok", clock[0]))
        await controller.tick()  # a conflict: a race, re-planned at once
        assert dns.writes == 1 and controller.problems() == []
        await controller.tick()
        await controller.tick()  # the third in a row is not a race
        assert dns.writes == 3
        problems = controller.problems()
        assert len(problems) == 1 and "refused as conflicts 3 times in a row" in problems[0]
        assert "already exists" in problems[0]  # the provider's own answer
        await controller.tick()
        await controller.tick()
        assert dns.writes == 3  # backing off: no write until the gap has passed
        clock[0] += 10
        dns.conflict = False
        await controller.tick()
        assert dns.writes == 4 and dns.answer() == ("127.0.1.1",)
        assert controller.problems() == []

    try:
        asyncio.run(scenario())
    finally:
        state.close()
    events = [e.message for e in SqliteState(tmp_path / "state.db").history(limit=50)]
    assert sum("already exists" in m for m in events) == 1  # said once, not per attempt


@pytest.mark.servers  # its endpoints listen on loopback
def test_nothing_is_written_before_the_first_full_probe_round(tmp_path: Path) -> None:
    """Each endpoint's first probe is held open: however often the loop goes round, DNS
    stays untouched until every endpoint has a result, then the answer is written."""
    release = asyncio.Event()
    probed: set[str] = set()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        probed.add(writer.get_extra_info("sockname")[0])
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        east = await asyncio.start_server(held, "127.0.1.1", 0)
        port = east.sockets[0].getsockname()[1]
        west = await asyncio.start_server(held, "127.0.2.1", port)
        cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                     [{"name": "api.example.test.", "type": "A", "policy": "failover",
                       "order": ["east", "west"]}],
                     checks={"web": {"type": "HTTP", "port": port, "request_interval": 1,
                                     "response_timeout": 60}})
        dns = HeldDns()
        state = SqliteState(tmp_path / "state.db")
        controller = Controller(cfg, state=state, adapter=dns, reconcile_interval=0.05)
        rounds = [0]

        def counted() -> None:
            rounds[0] += 1

        controller.on_tick = counted
        stop = asyncio.Event()
        running = asyncio.ensure_future(controller.run(stop))

        async def until(check: Callable[[], bool], timeout: float = 30) -> bool:
            deadline = asyncio.get_running_loop().time() + timeout
            while not check():
                if asyncio.get_running_loop().time() > deadline or running.done():
                    return False
                await asyncio.sleep(0.01)
            return True

        try:
            # both probes are in flight, and the loop has gone round many times since
            assert await until(lambda: probed == {"127.0.1.1", "127.0.2.1"})
            seen = rounds[0]
            assert await until(lambda: rounds[0] >= seen + 5)
            assert dns.records == {}  # nothing written
            assert not controller.ready
            release.set()
            assert await until(lambda: dns.answer() == ("127.0.1.1",))
            assert controller.ready
        finally:
            stop.set()
            await running
            state.close()
            east.close()
            west.close()

    asyncio.run(scenario())


@pytest.mark.servers  # its endpoints listen on loopback
def test_reloads_that_leave_the_checks_alone_neither_cut_nor_repeat_a_probe(
        tmp_path: Path) -> None:
    """A storm of reloads (as many SIGHUPs would make) that change a record but no check:
    the probes in flight are neither cancelled nor started again at every reload, and
    their results, when they come, count."""
    release = asyncio.Event()
    connections: list[str] = []

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        connections.append(writer.get_extra_info("sockname")[0])
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        east = await asyncio.start_server(held, "127.0.1.1", 0)
        port = east.sockets[0].getsockname()[1]
        west = await asyncio.start_server(held, "127.0.2.1", port)

        def cfg(ttl: int) -> Config:
            return config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                          [{"name": "api.example.test.", "type": "A", "policy": "failover",
                            "order": ["east", "west"], "ttl": ttl}],
                          checks={"web": {"type": "HTTP", "port": port, "request_interval": 60,
                                          "response_timeout": 60}})

        dns = HeldDns()
        state = SqliteState(tmp_path / "state.db")
        controller = Controller(cfg(30), state=state, adapter=dns, reconcile_interval=0.05)
        stop = asyncio.Event()
        running = asyncio.ensure_future(controller.run(stop))

        async def until(check: Callable[[], bool], timeout: float = 30) -> bool:
            deadline = asyncio.get_running_loop().time() + timeout
            while not check():
                if asyncio.get_running_loop().time() > deadline or running.done():
                    return False
                await asyncio.sleep(0.01)
            return True

        try:
            # interval 60 s: the west check is due half an interval after a (re)start
            assert await until(lambda: connections == ["127.0.1.1"])
            for ttl in range(31, 131):
                controller.reload(cfg(ttl), dns)
                await asyncio.sleep(0)
            assert await until(lambda: controller.cfg.records[0].ttl == 130)
            assert not controller.board.snapshot(0.0).endpoints["east/127.0.1.1"].recent
            release.set()
            assert await until(lambda: bool(controller.board.snapshot(0.0).endpoints[
                "east/127.0.1.1"].recent)), controller.board.snapshot(0.0)
            # that result is the probe started before the reloads: not cut, not repeated
            assert connections == ["127.0.1.1"]
        finally:
            stop.set()
            await running
            state.close()
            east.close()
            west.close()

    asyncio.run(scenario())


class PastDeadline:
    """A fleet member that was elected (epoch 9) and whose local deadline has passed."""

    vantage, ttl, deadline, lease_renewed, generation = "us-east-1", 3, 0.0, None, 1
    prefix = "/failover/test"
    on_change = None

    def leading(self) -> int | None:
        return None  # what the write path checks: past the deadline, no epoch

    def leader(self) -> dict[str, object]:
        return {"vantage": "us-east-1", "epoch": 9}

    def views(self) -> dict[str, object]:
        return {}

    def problem(self) -> None:
        return None


def test_status_and_the_leader_metric_follow_the_write_paths_deadline(tmp_path: Path) -> None:
    cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}])
    state = SqliteState(tmp_path / "state.db")
    try:
        controller = Controller(cfg, state=state, adapter=None, member=PastDeadline())  # type: ignore[arg-type]
        controller.leading = 9  # it led, and has not yet taken up that it no longer does
        maker = controller.cluster_maker()
        assert maker is not None
        assert maker()["role"] == "follower"
        controller.status_side.update_gauges(controller.board.snapshot(0.0), [], 0.0)
        assert controller.metrics.fleet_leader._value.get() == 0  # type: ignore[attr-defined]
    finally:
        state.close()


class FailingDns(HeldDns):
    """A zone whose writes fail with `error` (a server that answers SERVFAIL, or none)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        raise self.error


@pytest.mark.parametrize("answered", [True, False])
def test_a_servfail_is_an_answer_not_a_cut_from_dns(tmp_path: Path, answered: bool) -> None:
    """A leader whose writes get SERVFAIL reaches its server (handing over to another
    vantage would get the same answer); one whose writes get no answer does not."""
    from failover.dns.base import DnsServerFailed, DnsUnavailable

    cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}])
    error = (DnsServerFailed("127.0.0.1:53 answered SERVFAIL") if answered
             else DnsUnavailable("no answer from 127.0.0.1:53 within 2 s"))
    state = SqliteState(tmp_path / "state.db")
    clock = [1000.0]
    controller = Controller(cfg, state=state, adapter=FailingDns(error),
                            clock=lambda: clock[0])

    async def scenario() -> None:
        for target in controller.targets:
            controller.on_result(target, ProbeResult(True, "ok", clock[0]))
        await controller.tick()

    try:
        asyncio.run(scenario())
    finally:
        state.close()
    assert controller.writer.dns_error is not None
    assert controller.dns_reach is (None if answered else False)
