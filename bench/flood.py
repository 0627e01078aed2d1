"""Failover under a flood of slow connections to the controller's HTTP endpoint.

The same end-to-end setup as bench/failover.py (real named, a loopback fleet, the
controller as a process; interval 1 s, threshold 3), measured twice in one run: without
a flood (the baseline) and with 5,000 slow connections held open against the endpoint by
another process (each sends its request headers a byte every 2 s and, when the
controller drops it, comes back after a second: a slowloris that does not give up).
Target: the failover time with the flood within 0.5 s of the time without.

Usage: python bench/flood.py [--runs 8] [--connections 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from failover.localdns import LocalNamed, free_port  # noqa: E402
from tests.service_env import EAST, WEST, Env, wait_for  # noqa: E402

THRESHOLD = 3


async def slowloris(port: int, connections: int, duration: float) -> None:
    """Hold `connections` slow requests open against 127.0.0.1:`port` for `duration` s."""
    stop = time.monotonic() + duration
    opened = [0]

    async def one() -> None:
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                opened[0] += 1
                writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")
                while time.monotonic() < stop and not reader.at_eof():
                    writer.write(b"X")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(4096), timeout=2)
                writer.close()
            except OSError:
                pass
            await asyncio.sleep(1)

    await asyncio.gather(*(one() for _ in range(connections)))
    print(f"connections opened: {opened[0]}", flush=True)


def rtos(env: Env, runs: int) -> list[float]:
    out = []
    for i in range(runs):
        t0 = time.time()
        env.stop_region(EAST)
        assert wait_for(lambda: env.answer() == {WEST}, timeout=60, step=0.002), env.log()
        out.append(time.time() - t0)
        env.start_region(EAST)
        assert wait_for(lambda: env.answer() == {EAST}, timeout=60, step=0.01), env.log()
        time.sleep(0.3 + (i % 10) / 10)  # vary the phase of the next kill
    return out


def _established(port: int) -> int:
    """Connections established to `port` on loopback, as `ss` counts them."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    return len(out.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--attack", type=int, help=argparse.SUPPRESS)  # the flood process
    parser.add_argument("--duration", type=float, default=0, help=argparse.SUPPRESS)
    a = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, a.connections + 1024)), hard))
    if a.attack:
        asyncio.run(slowloris(a.attack, a.connections, a.duration))
        return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        named = LocalNamed.start(d / "named")
        (d / "tsig.secret").write_text(named.tsig_secret)
        env = Env(dir=d, named=named, http_port=free_port(EAST), api_port=free_port())
        env.write_config()
        env.config.write_text(env.config.read_text().replace("failure_threshold: 2",
                                                             f"failure_threshold: {THRESHOLD}"))
        flood = None
        try:
            env.start_region(EAST)
            env.start_region(WEST)
            env.start_controller()
            assert wait_for(lambda: env.answer() == {EAST}, timeout=30), env.log()
            quiet = rtos(env, a.runs)
            flood = subprocess.Popen([sys.executable, __file__, "--attack", str(env.api_port),
                                      "--connections", str(a.connections),
                                      "--duration", "3600"], stdout=subprocess.PIPE, text=True)
            time.sleep(10)  # the flood at full strength: every connection opened
            held = _established(env.api_port)
            t0 = time.monotonic()
            status_ok = env.status() != {}
            status_s = time.monotonic() - t0
            flooded = rtos(env, a.runs)
        finally:
            if flood is not None:
                flood.kill()
                flood.wait(timeout=30)
            env.stop_all()
            named.stop()
    base, under = statistics.median(quiet), statistics.median(flooded)
    print(f"failover with {a.connections} slow connections on the HTTP endpoint "
          f"({a.runs} runs each, interval 1 s, threshold {THRESHOLD}):")
    print(f"  without flood  RTO p50 {base:6.3f} s  max {max(quiet):6.3f} s  (baseline)")
    print(f"  with flood     RTO p50 {under:6.3f} s  max {max(flooded):6.3f} s")
    print(f"  difference     p50 {under - base:+6.3f} s   (target: within 0.5 s)")
    print(f"  flood: {held} connections established to the endpoint's port (client side)")
    print(f"  /status during the flood: {'answered' if status_ok else 'NO ANSWER'} in "
          f"{status_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
