"""Work that follows what changed, not the number of endpoints: health saves write the
checks that changed, gauges move on a flip, /status is made again when something changed
(or when read), probe results are counted without a label lookup each."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from failover.control.journal import SAVE_INTERVAL
from failover.control.status_side import STATUS_REFRESH
from failover.controller import Controller
from failover.health import CheckState
from failover.probes import ProbeResult
from failover.state.sqlite import SqliteState
from tests.builders import config
from tests.test_tick import HeldDns

EAST = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]


class CountingState(SqliteState):
    """A state file that remembers which checks each save wrote."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saves: list[tuple[str, set[str]]] = []

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self.saves.append(("whole", set(states)))
        super().save_checks(states)

    def update_checks(self, states: Mapping[str, CheckState]) -> None:
        self.saves.append(("changed", set(states)))
        super().update_checks(states)


def make(tmp_path: Path, state: SqliteState) -> tuple[Controller, list[float]]:
    cfg = config({"east": EAST, "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}])
    clock = [1000.0]
    return Controller(cfg, state=state, adapter=HeldDns(), clock=lambda: clock[0]), clock


def probe_all(c: Controller, clock: list[float], down: frozenset[str] = frozenset()) -> None:
    for t in c.targets:
        ok = t.endpoint.split("/", 1)[1] not in down
        c.on_result(t, ProbeResult(ok, "status 200" if ok else "connection refused", clock[0],
                                   1.0 if ok else None))
        clock[0] += 0.01


def test_a_health_save_writes_the_checks_that_changed_and_a_restart_has_them_all(
        tmp_path: Path) -> None:
    state = CountingState(tmp_path / "state.db")
    c, clock = make(tmp_path, state)
    first = "east/127.0.1.1|web|local"

    async def scenario() -> None:
        probe_all(c, clock)
        await c.tick()
        assert state.saves[-1] == ("whole", {f"east/{a}|web|local" for a in EAST}
                                   | {"west/127.0.2.1|web|local"})
        for _ in range(3):  # results that change nothing: latency and recent only
            clock[0] += SAVE_INTERVAL
            probe_all(c, clock)
            await c.tick()
            assert state.saves[-1] == ("changed", set())
        clock[0] += SAVE_INTERVAL
        probe_all(c, clock, down=frozenset({"127.0.1.1"}))  # one failure of three
        await c.tick()
        assert state.saves[-1] == ("changed", {first})

    asyncio.run(scenario())
    state.close()
    kept = SqliteState(tmp_path / "state.db")
    try:
        checks = kept.load_checks()
        assert set(checks) == {f"east/{a}|web|local" for a in EAST} | {"west/127.0.2.1|web|local"}
        assert (checks[first].healthy, checks[first].streak) == (True, 1)
        assert checks["east/127.0.1.2|web|local"].streak == 0
    finally:
        kept.close()


def test_gauges_move_when_a_status_flips_and_are_left_alone_otherwise(tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "state.db")
    c, clock = make(tmp_path, state)
    gauge = c.metrics.endpoint_healthy
    calls = []
    real = gauge.labels

    def counting(*labels: str) -> object:
        calls.append(labels)
        return real(*labels)

    gauge.labels = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        probe_all(c, clock)
        await c.tick()
        assert len(calls) == 4
        calls.clear()
        probe_all(c, clock)
        await c.tick()
        assert calls == []  # nothing flipped: no endpoint looked at
        for _ in range(3):  # the default threshold: 127.0.1.2 flips
            probe_all(c, clock, down=frozenset({"127.0.1.2"}))
        await c.tick()
        assert calls
        text = c.metrics.render().decode()
        assert 'failover_endpoint_healthy{endpoint="east/127.0.1.2",region="east"} 0.0' in text
        assert 'failover_endpoint_healthy{endpoint="east/127.0.1.1",region="east"} 1.0' in text
        # per-probe series, counted as before
        assert ('failover_probes_total{check="web",endpoint="east/127.0.1.2",result="fail"} 3.0'
                in text), text
        assert ('failover_probes_total{check="web",endpoint="east/127.0.1.2",result="ok"} 2.0'
                in text)
        assert 'failover_probe_latency_seconds{check="web",endpoint="east/127.0.1.1"} 0.001' \
            in text

    try:
        asyncio.run(scenario())
    finally:
        state.close()


def test_status_is_made_again_when_something_changed_or_when_read_and_old(
        tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "state.db")
    c, clock = make(tmp_path, state)

    async def scenario() -> None:
        probe_all(c, clock)
        await c.tick()
        built_at, version = clock[0], c.version
        clock[0] += 10 * STATUS_REFRESH
        probe_all(c, clock)
        await c.tick()
        # nothing changed: not made again for nobody, only when asked
        assert not c.status_due(built_at, version, asked=False)
        assert c.status_due(built_at, version, asked=True)
        assert not c.status_due(clock[0], version, asked=True)  # asked, but fresh
        for _ in range(3):
            probe_all(c, clock, down=frozenset(EAST))
        await c.tick()
        assert c.status_due(clock[0], version, asked=False)  # a flip: made again

    try:
        asyncio.run(scenario())
    finally:
        state.close()


def test_the_exposition_parses_with_every_family_once_and_labels_escaped() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from failover.metrics import Metrics

    m = Metrics()
    odd = 'east/we"ird\\name'
    m.probes.observe(odd, "web", True, 2.0)
    m.probes.observe(odd, "web", False, None)
    m.endpoint_healthy.labels("east", odd).set(1)
    m.endpoint_healthy.labels("east", "east/127.0.1.1").set(0)
    families = list(text_string_to_metric_families(m.render().decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families for s in f.samples}
    assert samples[("failover_probes_total", (("check", "web"), ("endpoint", odd),
                                              ("result", "fail")))] == 1.0
    assert samples[("failover_probe_latency_seconds", (("check", "web"),
                                                       ("endpoint", odd)))] == 0.002
    assert samples[("failover_endpoint_healthy", (("endpoint", odd), ("region", "east")))] == 1
    assert samples[("failover_endpoint_healthy", (("endpoint", "east/127.0.1.1"),
                                                  ("region", "east")))] == 0
