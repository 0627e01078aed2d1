"""The scheduler: spread phases, every target on its interval, hung probes isolated."""

from __future__ import annotations

import asyncio
from collections import Counter

from failover.probes import ProbeResult, ProbeTarget
from failover.probes.scheduler import Scheduler, phases, probe_all


def targets(n: int, interval: float) -> list[ProbeTarget]:
    return [ProbeTarget(key=f"r/e{i}#c", endpoint=f"r/e{i}", check="c", type="TCP",
                        ip="127.0.0.1", fqdn=None, port=1, path="/", host="h", sni=None,
                        search=None, tls=False, verify_tls=True, interval=interval,
                        connect_timeout=1, response_timeout=1, body_timeout=1)
            for i in range(n)]


def test_phases_spread_evenly_within_each_interval() -> None:
    ts = targets(10, 10.0)
    before = phases(ts)
    assert sorted(before.values()) == [float(i) for i in range(10)]
    # stable: adding a target moves the others by at most one slot
    after = phases(targets(11, 10.0))
    assert all(abs(after[k] - v) <= 10.0 / 10 for k, v in before.items())


def test_every_target_runs_on_its_interval_and_hung_probes_do_not_delay_others() -> None:
    seen: Counter[str] = Counter()
    in_flight = 0
    peak = 0

    async def fake_probe(t: ProbeTarget) -> ProbeResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            if t.key == "r/e0#c":
                await asyncio.sleep(30)  # hangs far beyond the run
            return ProbeResult(True, "ok", 0.0)
        finally:
            in_flight -= 1

    sched = Scheduler(targets(10, 0.1), lambda t, r: seen.update([t.key]), concurrency=8,
                      probe_fn=fake_probe)
    asyncio.run(sched.run(duration=1.0))
    assert seen["r/e0#c"] == 0
    # ten intervals in a second; allow for loop start-up on a busy machine
    assert all(6 <= seen[f"r/e{i}#c"] <= 11 for i in range(1, 10)), seen
    assert peak <= 8
    assert sched.stats.started >= 9 * 6 and sched.stats.lag_quantile(0.5) is not None


def test_probe_all_returns_results_in_target_order() -> None:
    async def fake_probe(t: ProbeTarget) -> ProbeResult:
        await asyncio.sleep(0.01 * (10 - int(t.endpoint[3:])))
        return ProbeResult(True, t.key, 0.0)

    out = asyncio.run(probe_all(targets(10, 1.0), concurrency=4, probe_fn=fake_probe))
    assert [r.reason for _, r in out] == [t.key for t in targets(10, 1.0)]
