"""Plain checks run by callbacks: every connection aborted, none left in TIME_WAIT, and
a probe cancelled in flight leaves nothing behind."""

from __future__ import annotations

import asyncio
import os

from failover.probes import ProbeResult, ProbeTarget
from failover.probes.check import probe
from failover.probes.plain import PlainProbe
from tests.fleet import fleet


def target(port: int, kind: str = "HTTP") -> ProbeTarget:
    return ProbeTarget(key="r/e#c", endpoint="r/e", check="c", type=kind, ip="127.0.0.1",
                       fqdn=None, port=port, path="/health", host=f"127.0.0.1:{port}",
                       sni=None, search=None, tls=False, verify_tls=True, interval=1.0,
                       connect_timeout=1, response_timeout=1, body_timeout=1)


def time_wait_to(port: int) -> int:
    """Sockets in TIME_WAIT (state 06) whose local or remote port is `port`."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                ports = {int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)}
                n += cols[3] == "06" and port in ports
    return n


def test_checks_leave_no_time_wait_sockets_behind() -> None:
    with fleet([{"name": "ok", "behaviour": "ok"}]) as ready:
        port = ready["ok"][1]

        async def main() -> list[ProbeResult]:
            return [await probe(target(port, kind)) for _ in range(30)
                    for kind in ("HTTP", "TCP")]

        results = asyncio.run(main())
        assert all(r.ok for r in results), results[:3]
        assert time_wait_to(port) == 0


def test_a_probe_cancelled_in_flight_closes_its_socket_and_says_nothing() -> None:
    with fleet([{"name": "hang", "behaviour": "hang"}]) as ready:
        port = ready["hang"][1]
        said: list[ProbeResult] = []

        async def main() -> tuple[int, int]:
            loop = asyncio.get_running_loop()
            before = len(os.listdir("/proc/self/fd"))
            running = PlainProbe(loop, target(port), said.append)
            other: list[ProbeResult] = []
            alongside = PlainProbe(loop, target(port), other.append)
            for _ in range(100):  # both connected and waiting for the response
                if running.t1 and alongside.t1:
                    break
                await asyncio.sleep(0.01)
            during = len(os.listdir("/proc/self/fd"))
            running.cancel()
            for _ in range(300):  # the other one's response timeout, hence this one's too
                if other:
                    break
                await asyncio.sleep(0.01)
            assert other and other[0].reason == "timeout after 1 s waiting for the response"
            return during - before, len(os.listdir("/proc/self/fd")) - before

        opened, left = asyncio.run(main())
        assert opened == 2 and left == 0
        assert said == []
