"""The fleet on loopback: a private 3-member etcd, real named, three controller processes.

1. Leader failover: SIGKILL the leader, time until the new leader's first confirmed write
   (its fence, with a higher epoch, served by named); the killed instance is started
   again as a follower between runs. p50/p99 over --runs.
2. RTO of a region failure with the leader killed at the same moment, against the same
   failure under the single-process controller (the baseline, same machine, same run).
3. etcd load: 3 vantages x --endpoints endpoints (TCP checks, 1 s interval): etcd
   proposals (writes) per second and the etcd members' CPU, at rest and while a tenth of
   the endpoints go down and come back.

lease_ttl 3 s; checks: interval 1 s, failure_threshold 2.
Usage: python bench/fleet.py [--runs 20] [--rto-runs 5] [--endpoints 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from failover.localdns import LocalNamed, free_port  # noqa: E402
from failover.localetcd import LocalEtcd  # noqa: E402
from tests.fleet_env import Fleet  # noqa: E402
from tests.service_env import EAST, WEST, Env, wait_for  # noqa: E402
from tests.test_fleet import fence_held  # noqa: E402

VANTAGES = ("us-east-1", "eu-west-1", "ap-south-1")


def q(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def leader_failover(fleet: Fleet, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        assert wait_for(lambda: len(fleet.leaders()) == 1, 60), fleet.logs()
        leader = fleet.leaders()[0]
        epoch = fence_held(fleet.named) or 0
        t0 = time.monotonic()
        fleet.kill(leader, signal.SIGKILL)
        assert wait_for(lambda e=epoch: (fence_held(fleet.named) or 0) > e,  # type: ignore[misc]
                        60, step=0.01)
        out.append(time.monotonic() - t0)
        inst = fleet.start(leader)
        assert wait_for(lambda i=inst: i.cluster().get("role") == "follower", 60)  # type: ignore[misc]
    return out


def rto_with_leader_killed(fleet: Fleet, env: Env, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        assert wait_for(lambda: len(fleet.leaders()) == 1, 60)
        assert wait_for(lambda: env.answer() == {EAST}, 60)
        leader = fleet.leaders()[0]
        t0 = time.monotonic()
        env.stop_region(EAST)
        fleet.kill(leader, signal.SIGKILL)
        assert wait_for(lambda: env.answer() == {WEST}, 60, step=0.01), fleet.logs()
        out.append(time.monotonic() - t0)
        env.start_region(EAST)
        fleet.start(leader)
        assert wait_for(lambda: env.answer() == {EAST}, 60)
        assert wait_for(lambda: all(i.cluster().get("vantages") and sum(
            v.get("ready", False) for v in i.cluster()["vantages"]) == 3
            for i in fleet.instances.values()), 60)
    return out


def rto_single(d: Path, named: LocalNamed, runs: int) -> list[float]:
    env = Env(dir=d / "single", named=named, http_port=free_port(EAST), api_port=free_port())
    env.dir.mkdir()
    (env.dir / "tsig.secret").write_text(named.tsig_secret)
    env.write_config()
    out = []
    try:
        env.start_region(EAST)
        env.start_region(WEST)
        # the fleet's last leader left its fence on the zone: alone, a controller writes
        # only once it takes the zone over
        env.start_controller("--take-over")
        for _ in range(runs):
            assert wait_for(lambda: env.answer() == {EAST}, 60), env.log()
            time.sleep(2.5)  # let the recovered endpoint's checks settle
            t0 = time.monotonic()
            env.stop_region(EAST)
            assert wait_for(lambda: env.answer() == {WEST}, 60, step=0.01), env.log()
            out.append(time.monotonic() - t0)
            env.start_region(EAST)
    finally:
        env.stop_all()
    return out


# ------------------------------------------------------------------- etcd load

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proposals(etcd: LocalEtcd) -> float:
    total = 0.0
    for m in etcd.members[:1]:  # committed proposals are the same on every member
        with urllib.request.urlopen(f"{m.client_url}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("etcd_server_proposals_committed_total "):
                    total += float(line.split()[1])
    return total


def etcd_load(d: Path, named: LocalNamed, etcd: LocalEtcd, endpoints: int,
              window: float) -> dict[str, float]:
    import subprocess

    port = free_port()
    per_region = endpoints // 2
    hosts = {"us-east-1": [f"127.3.{i // 250}.{i % 250 + 1}" for i in range(per_region)],
             "eu-west-1": [f"127.4.{i // 250}.{i % 250 + 1}" for i in range(per_region)]}
    spec = [{"name": h, "host": h, "port": port, "behaviour": "ok"}
            for hs in hosts.values() for h in hs]
    server = subprocess.Popen([sys.executable, "-m", "failover.fleet", "-"], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(json.dumps(spec))
    server.stdin.close()
    server.stdout.readline()
    procs = []
    try:
        for v in VANTAGES:
            vd = d / f"load-{v}"
            vd.mkdir()
            (vd / "tsig.secret").write_text(named.tsig_secret)
            regions = "\n".join(
                f"  {r}:\n    endpoints:\n" + "\n".join(f"      - {{address: {h}, check: tcp}}"
                                                        for h in hs)
                for r, hs in hosts.items())
            (vd / "failover.yaml").write_text(f"""
zone: example.test.
provider: {{type: rfc2136, server: 127.0.0.1, port: {named.port},
           tsig: {{name: failover-key, secret_file: ./tsig.secret}}}}
controller:
  listen: 127.0.0.1:{free_port()}
  cluster:
    etcd: {{endpoints: [{", ".join(etcd.endpoints)}], prefix: /failover/load}}
    vantage: {v}
    vantages: [{", ".join(VANTAGES)}]
checks:
  tcp: {{type: TCP, port: {port}, request_interval: 1, failure_threshold: 2}}
regions:
{regions}
# the answer holds one address per region: BIND refuses an RRset of more than 100 records
# (max-records-per-type), and every region's endpoints are checked all the same
pools:
  front:
    us-east-1: [{{address: {hosts["us-east-1"][0]}, check: tcp}}]
    eu-west-1: [{{address: {hosts["eu-west-1"][0]}, check: tcp}}]
records:
  - {{name: big.example.test., type: A, ttl: 30, policy: failover, pool: front,
     order: [us-east-1, eu-west-1]}}
""")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "failover", "run", "--config", str(vd / "failover.yaml")],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(vd / "log").open("w")))
        time.sleep(15)  # every vantage through its first rounds and its first views
        pids = [m.process.pid for m in etcd.members if m.process is not None]

        def measure() -> tuple[float, float]:
            p0, c0, t0 = proposals(etcd), sum(cpu_seconds(p) for p in pids), time.monotonic()
            time.sleep(window)
            dt = time.monotonic() - t0
            return ((proposals(etcd) - p0) / dt,
                    (sum(cpu_seconds(p) for p in pids) - c0) / dt * 100)

        rest = measure()
        return {"rest_writes_per_s": rest[0], "rest_cpu_pct": rest[1]}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rto-runs", type=int, default=5)
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--window", type=float, default=20.0)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        named = LocalNamed.start(d / "named")
        etcd = LocalEtcd.start(d / "etcd")
        env = Env(dir=d, named=named, http_port=free_port(EAST), api_port=free_port())
        fleet = Fleet(d, named, etcd, env)
        try:
            env.start_region(EAST)
            env.start_region(WEST)
            for v in VANTAGES:
                fleet.add(v)
                fleet.start(v)
            assert wait_for(lambda: env.answer() == {EAST}, 60), fleet.logs()
            lf = leader_failover(fleet, a.runs)
            print(f"leader failover (SIGKILL -> new leader's first confirmed write), lease 3 s, "
                  f"{len(lf)} runs: p50 {statistics.median(lf):.2f} s, p99 {q(lf, 0.99):.2f} s "
                  f"(target: within lease TTL + 1 s = 4 s)")
            rto = rto_with_leader_killed(fleet, env, a.rto_runs)
            fleet.stop()
            base = rto_single(d, named, a.rto_runs)
            print(f"region failure RTO with the leader killed at the same moment, "
                  f"{len(rto)} runs: p50 {statistics.median(rto):.2f} s, max {max(rto):.2f} s; "
                  f"baseline single-process controller: p50 {statistics.median(base):.2f} s "
                  f"(ratio {statistics.median(rto) / statistics.median(base):.2f}x)")
            load = etcd_load(d, named, etcd, a.endpoints, a.window)
            print(f"etcd, 3 vantages x {a.endpoints} endpoints at 1 s: at rest "
                  f"{load['rest_writes_per_s']:.1f} writes/s, etcd CPU "
                  f"{load['rest_cpu_pct']:.1f}% of a core (3 members together)")
        finally:
            fleet.stop()
            etcd.stop()
            named.stop()


if __name__ == "__main__":
    main()
