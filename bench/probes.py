"""Probe engine benchmark: loopback fleet, sustained schedule, CPU, lag and memory.

Measures in one run, against a fleet of loopback HTTP endpoints in a separate process:
  1. our scheduler at 20,000 endpoints for rising rates (interval 10 s = 2,000 checks/s,
     then shorter), each in a fresh process: checks/s sustained, CPU per check, share of
     one core, p50/p99 schedule lag, RSS;
  2. saturation: checks/s and CPU per check, new connection each time, for our probe and
     for a plain httpx loop (the baseline);
and reports the highest rate meeting the target (p99 lag <= 50 ms, <= half a core,
RSS <= 200 MB) and the ratio to httpx.

Usage: python bench/probes.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from failover.probes.check import probe  # noqa: E402
from failover.probes.runtime import run_loop  # noqa: E402
from failover.probes.scheduler import Scheduler  # noqa: E402
from failover.probes.target import ProbeTarget  # noqa: E402

ENDPOINTS = 20_000
LAG_TARGET_MS = 50.0
CPU_TARGET = 0.5
RSS_TARGET_MB = 200.0
# 8 loopback addresses x 8 ports: 64 listeners share the endpoints' connections
HOSTS = [f"127.0.0.{i}" for i in range(2, 10)]
PORTS_PER_HOST = 8


def start_fleet() -> tuple[subprocess.Popen[str], list[tuple[str, int]]]:
    spec = [{"name": f"{h}-{i}", "host": h, "port": 0, "behaviour": "ok"}
            for h in HOSTS for i in range(PORTS_PER_HOST)]
    proc = subprocess.Popen([sys.executable, "-m", "failover.fleet", "-"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    ready = json.loads(proc.stdout.readline())["ready"]
    return proc, [(h, p) for h, p in ready.values()]


def make_targets(n: int, interval: float, listeners: list[tuple[str, int]]) -> list[ProbeTarget]:
    out = []
    for i in range(n):
        host, port = listeners[i % len(listeners)]
        out.append(ProbeTarget(
            key=f"r{i % 4}/ep{i}#web", endpoint=f"r{i % 4}/ep{i}", check="web", type="HTTP",
            ip=host, fqdn=None, port=port, path="/health", host=f"{host}:{port}", sni=None,
            search=None, tls=False, verify_tls=True, interval=interval, connect_timeout=4.0,
            response_timeout=2.0, body_timeout=2.0))
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


# ------------------------------------------------------------------ engine subprocesses

def httpx_probe_fn():
    """The baseline transport: a plain httpx GET per check, new connection each time."""
    import httpx

    from failover.probes.result import ProbeResult

    client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0,
                                                   max_connections=None), timeout=4.0)

    async def fn(t: ProbeTarget) -> ProbeResult:
        try:
            r = await client.get(f"http://{t.ip}:{t.port}{t.path}", headers={"Connection": "close"})
            return ProbeResult(200 <= r.status_code < 400, f"status {r.status_code}", 0.0)
        except httpx.HTTPError as exc:
            return ProbeResult(False, str(exc), 0.0)

    return fn


def engine_sustained(n: int, interval: float, duration: float, listeners: list,
                     transport: str = "ours") -> dict:
    targets = make_targets(n, interval, listeners)
    failures = 0

    def sink(_t: ProbeTarget, r: object) -> None:
        nonlocal failures
        failures += not getattr(r, "ok", False)

    sched: Scheduler | None = None

    async def main() -> None:
        nonlocal sched
        fn = probe if transport == "ours" else httpx_probe_fn()
        sched = Scheduler(targets, sink, concurrency=2048, probe_fn=fn)
        await sched.run(duration=duration)

    c0, w0 = time.process_time(), time.perf_counter()
    (run_loop if transport == "ours" else asyncio.run)(main())
    assert sched is not None
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    lags = sorted(sched.stats.lags)
    return {"rate": n / interval, "checks": sched.stats.finished, "failures": failures,
            "wall": wall, "cpu": cpu, "missed": sched.stats.missed, "shed": sched.stats.shed,
            "p50_ms": lags[len(lags) // 2] * 1000, "p99_ms": lags[int(len(lags) * 0.99)] * 1000,
            "rss_mb": rss_mb(), "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


async def _saturate(fn, listeners: list, seconds: float, concurrency: int) -> int:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop_at:
            await fn(listeners[i % len(listeners)])
            done += 1
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done


def engine_saturation(kind: str, seconds: float, listeners: list) -> dict:
    if kind == "ours":
        targets = {hp: make_targets(1, 1.0, [hp])[0] for hp in listeners}

        async def one(hp: tuple[str, int]) -> None:
            r = await probe(targets[hp])
            assert r.ok, r.reason

        async def main() -> int:
            return await _saturate(one, listeners, seconds, 64)

        runner = run_loop
    else:
        import httpx

        async def main() -> int:
            limits = httpx.Limits(max_keepalive_connections=0, max_connections=None)
            async with httpx.AsyncClient(limits=limits, timeout=4.0) as client:
                async def one(hp: tuple[str, int]) -> None:
                    r = await client.get(f"http://{hp[0]}:{hp[1]}/health",
                                         headers={"Connection": "close"})
                    assert r.status_code == 200
                return await _saturate(one, listeners, seconds, 64)

        runner = asyncio.run  # httpx's reference setup: the standard loop
    c0, w0 = time.process_time(), time.perf_counter()
    done = runner(main())
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return {"kind": kind, "checks": done, "rate": done / wall, "cpu_us": cpu / done * 1e6,
            "cpu_share": cpu / wall}


def run_child(args: list[str], listeners: list) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(args),
                          json.dumps(listeners)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs (CI smoke)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("listeners", nargs="?", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        spec = json.loads(a.child)
        listeners = [tuple(x) for x in json.loads(a.listeners)]
        if spec[0] == "sustained":
            print(json.dumps(engine_sustained(spec[1], spec[2], spec[3], listeners, spec[4])))
        else:
            print(json.dumps(engine_saturation(spec[1], spec[2], listeners)))
        return

    fleet, listeners = start_fleet()
    try:
        sat_s = 3.0 if a.quick else 8.0
        print(f"fleet: {len(listeners)} loopback listeners in one process (pid {fleet.pid})")
        print(f"\nSaturation, new connection per check, 64 in flight, {sat_s:g} s each:")
        sat = {k: run_child(["saturation", k, sat_s], listeners) for k in ("httpx", "ours")}
        for k, r in sat.items():
            print(f"  {k:<6} {r['rate']:8.0f} checks/s  {r['cpu_us']:6.0f} us CPU/check  "
                  f"({r['cpu_share']:.2f} of a core)")
        print(f"  ratio: {sat['httpx']['cpu_us'] / sat['ours']['cpu_us']:.1f}x less CPU per "
              f"check, {sat['ours']['rate'] / sat['httpx']['rate']:.1f}x the checks/s of httpx")

        print(f"\nSustained schedule, {ENDPOINTS:,} endpoints (target: p99 lag <= "
              f"{LAG_TARGET_MS:g} ms, <= {CPU_TARGET} core, RSS <= {RSS_TARGET_MB:g} MB):")
        best = best_lag = None
        rates = [2000, 4000] if a.quick else [2000, 3000, 4000, 5000, 8000]
        runs = [("httpx", 10.0)] + [("ours", ENDPOINTS / rate) for rate in rates]
        for transport, interval in runs:
            duration = 12.0 if a.quick else max(2 * interval, 15.0)
            r = run_child(["sustained", ENDPOINTS, interval, duration, transport], listeners)
            share = r["cpu"] / r["wall"]
            ok = (r["p99_ms"] <= LAG_TARGET_MS and share <= CPU_TARGET
                  and r["maxrss_mb"] <= RSS_TARGET_MB and r["failures"] == 0)
            print(f"  {transport:<5} interval {interval:4.2g} s = {r['rate']:6.0f} checks/s: done "
                  f"{r['checks'] / r['wall']:6.0f}/s, {r['cpu'] / r['checks'] * 1e6:4.0f} us "
                  f"CPU/check, {share:.2f} core, lag p50 {r['p50_ms']:5.1f} ms p99 "
                  f"{r['p99_ms']:6.1f} ms, RSS {r['maxrss_mb']:5.0f} MB, failures "
                  f"{r['failures']}, shed {r['shed']}  {'meets target' if ok else 'misses target'}")
            if ok and transport == "ours":
                best = r["rate"]
            if r["p99_ms"] <= LAG_TARGET_MS and transport == "ours" and r["failures"] == 0:
                best_lag = r["rate"]
        print(f"\nhighest rate meeting every target: {best or 0:,.0f} checks/s; meeting the "
              f"lag target alone: {best_lag or 0:,.0f} checks/s ({ENDPOINTS:,} endpoints)")
    finally:
        fleet.terminate()
        fleet.wait(timeout=10)


if __name__ == "__main__":
    main()
