"""Scale benchmark: the controller with 10 to 50,000 records against a real named.

For each zone size N: N failover records (us-east-1 first, eu-west-1 second; each with
its ownership marker, so 2N record sets), the controller as a process, real loopback
endpoints (HTTP check, interval 1 s, threshold 2). It prints:
- first convergence: controller start -> the last name served;
- RTO: the primary endpoint killed -> the first and the last name (in write order)
  answering the secondary, over several runs (p50, p99), and the same back;
- at rest: the controller's CPU share and RSS with nothing changing;
- the reconcile tick p99 and the probe schedule lag p99 (from /metrics) over the runs;
- for the largest N: `plan --no-read`, `status --no-read` and `drain` wall times.
Then a probe-only run with 5,000 endpoints (CPU, lag). The baseline is the same
measurement with 10 records in the same run: the ratio is the figure.

With `--networks K` (K >= 2) the zone is served from K BIND views, one per client
network (K-1 networks of their own address range, and default): every name has K
answers, each written through its view's key, and every figure waits for the name in
every network (asked from an address of each).

Usage: python bench/scale.py [--sizes 10,1000,10000,50000] [--runs 3] [--endpoints 5000]
                             [--networks 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from failover.localdns import LocalNamed, free_port  # noqa: E402
from tests.fleet import fleet  # noqa: E402
from tests.service_env import EAST, WEST, Env, wait_for  # noqa: E402

THRESHOLD, INTERVAL = 2, 1.0
TICKS = os.sysconf("SC_CLK_TCK")


def q(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def answer(port: int, name: str, source: str | None = None) -> str | None:
    try:
        r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1,
                          source=source)
    except Exception:
        return None
    if r.rcode() != dns.rcode.NOERROR:
        return None
    return next((rd.to_text() for rrset in r.answer for rd in rrset), None)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) / 1024 if m else 0.0


def metrics(env: Env) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{env.api_port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def histogram_p99(text: str, name: str) -> float | None:
    """The p99 of a Prometheus histogram, as the upper bound of its bucket."""
    buckets = [(float(m.group(1)), float(m.group(2))) for m in re.finditer(
        rf'{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)', text)]
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return le
    return None


def gauge(text: str, name: str) -> float | None:
    m = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def network_ranges(k: int) -> dict[str, list[str]]:
    """K client networks: K-1 of their own /24 (127.0.200.0/24, ...) and default."""
    nets = {f"net{i}": [f"127.0.{200 + i}.0/24"] for i in range(k - 1)}
    return {**nets, "default": []} if k > 1 else {}


def sources(k: int) -> list[str | None]:
    """An address of each network's clients (None: the default one's, 127.0.0.1)."""
    return [f"127.0.{200 + i}.1" for i in range(k - 1)] + [None]


def write_config(env: Env, n: int, k: int = 1) -> None:
    env.write_config()
    text = env.config.read_text().replace("failure_threshold: 2",
                                          f"failure_threshold: {THRESHOLD}")
    if k > 1:
        views = "".join(f"    {v}: {{tsig: {{name: view-{v}, secret_file: ./{v}.key}}}}\n"
                        for v in network_ranges(k))
        nets = "".join(f"  {v}: {{cidrs: {cidrs}}}\n" if cidrs else f"  {v}: {{}}\n"
                       for v, cidrs in network_ranges(k).items())
        text = text.replace("  tsig: {name: failover-key, secret_file: ./tsig.secret}\n",
                            "  views:\n" + views).replace("controller:\n",
                                                           "networks:\n" + nets + "controller:\n", 1)
    head, _ = text.split("records:\n", 1)
    body = "".join(f"  - {{name: r{i}.example.test., type: A, ttl: 60, policy: failover, "
                   f"order: [us-east-1, eu-west-1]}}\n" for i in range(n))
    env.config.write_text(head + "records:\n" + body)


def timed_cli(env: Env, *args: str) -> float:
    t0 = time.perf_counter()
    r = env.cli(*args)
    assert r.returncode in (0, 2), r.stdout + r.stderr
    return time.perf_counter() - t0


def one_size(n: int, runs: int, cli_times: bool, k: int = 1) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        named = LocalNamed.start(d / "named", views=network_ranges(k) or None)
        (d / "tsig.secret").write_text(named.tsig_secret)
        for view, secret in named.view_keys.items():
            (d / f"{view}.key").write_text(secret)
        env = Env(dir=d, named=named, http_port=free_port(EAST), api_port=free_port())
        write_config(env, n, k)
        clients = sources(k)

        def everywhere(name: str, value: str) -> bool:
            return all(answer(port, name, c) == value for c in clients)

        names = sorted(f"r{i}.example.test." for i in range(n))
        first, last = names[0], names[-1]
        port = named.port
        out: dict[str, object] = {"n": n}
        try:
            env.start_region(EAST)
            env.start_region(WEST)
            t0 = time.monotonic()
            proc = env.start_controller()
            # a first write goes out in config order, a failover in name order: converged
            # when the last of both is served
            final = f"r{n - 1}.example.test."
            assert wait_for(lambda: everywhere(final, EAST) and everywhere(last, EAST)
                            and everywhere(first, EAST),
                            timeout=600, step=0.05), env.log()[-3000:]
            out["converge_s"] = time.monotonic() - t0
            # at rest: let the bulk work and the first saves finish, then measure
            time.sleep(5)
            c0, w0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(10)
            out["rest_cpu"] = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0)
            out["rss_mb"] = rss_mb(proc.pid)
            rto_first, rto_last, back_last, lags = [], [], [], []
            for i in range(runs):
                t = time.monotonic()
                env.stop_region(EAST)
                assert wait_for(lambda: answer(port, first, clients[0]) == WEST, timeout=120,
                                step=0.01), env.log()[-3000:]
                rto_first.append(time.monotonic() - t)
                assert wait_for(lambda: everywhere(last, WEST), timeout=120, step=0.01)
                rto_last.append(time.monotonic() - t)
                lag = gauge(metrics(env), "failover_probe_schedule_lag_p99_seconds")
                if lag is not None:
                    lags.append(lag)
                t = time.monotonic()
                env.start_region(EAST)
                assert wait_for(lambda: everywhere(last, EAST), timeout=120, step=0.01)
                back_last.append(time.monotonic() - t)
                lag = gauge(metrics(env), "failover_probe_schedule_lag_p99_seconds")
                if lag is not None:
                    lags.append(lag)
                time.sleep(1.3 + 0.37 * i)  # vary where in the probe interval the kill lands
            text = metrics(env)
            out.update(rto_first=rto_first, rto_last=rto_last, back_last=back_last,
                       tick_p99=histogram_p99(text, "failover_reconcile_seconds"),
                       lag_p99=max(lags) if lags else None)
            if cli_times:
                out["plan_no_read_s"] = timed_cli(env, "plan", "--no-read")
                out["status_no_read_s"] = timed_cli(env, "status", "--no-read")
                out["status_s"] = timed_cli(env, "status")
                out["drain_s"] = timed_cli(env, "drain", "eu-west-1", "--reason", "bench")
                timed_cli(env, "restore", "eu-west-1")
            events = json.loads(env.cli("history", "--json").stdout)
            out["errors"] = sum(1 for e in events if e["kind"] == "error")
            writes = [e["detail"] for e in events if e["kind"] == "dns"
                      and e["detail"].get("decide_ms") is not None]
            out["stages"] = {k: statistics.median(w[k] for w in writes) for k in (
                "decide_ms", "plan_ms", "applied_ms", "confirmed_ms")} if writes else {}
        finally:
            env.stop_all()
            named.stop()
        return out


def endpoints_only(count: int) -> dict[str, float]:
    """A controller probing `count` endpoints (each its own loopback address) at 1 s."""
    hosts = [f"127.4.{i // 250}.{i % 250 + 1}" for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        port = free_port("127.4.0.1")
        spec = [{"name": h, "host": h, "port": port, "behaviour": "ok"} for h in hosts]
        api = free_port()
        eps = "".join(f"      - {{address: {h}, check: web}}\n" for h in hosts)
        (d / "failover.yaml").write_text(
            "zone: example.test.\nprovider: {type: none}\n"
            f"controller: {{state: ./failover.db, listen: '127.0.0.1:{api}'}}\n"
            f"checks:\n  web: {{type: HTTP, port: {port}, resource_path: /health, "
            "request_interval: 1, failure_threshold: 2, response_timeout: 0.5}\n"
            "regions:\n  big:\n    endpoints:\n" + eps
            + "records:\n  - {name: api.example.test., type: A, policy: weighted, "
              "weights: {big: 1}}\n")
        with fleet(spec):
            env = Env(dir=d, named=None, http_port=port, api_port=api)  # type: ignore[arg-type]
            proc = env.start_controller()
            try:
                assert wait_for(lambda: "failover_ready 1.0" in metrics(env), timeout=120)
                time.sleep(3)
                c0, w0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(10)
                cpu = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0)
                lag = gauge(metrics(env), "failover_probe_schedule_lag_p99_seconds")
                return {"cpu": cpu, "lag": lag or 0.0, "rss": rss_mb(proc.pid)}
            finally:
                env.stop_controller()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000,10000,50000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--endpoints", type=int, default=5000)
    parser.add_argument("--networks", type=int, default=1,
                        help="client networks, each a BIND view (1: no networks)")
    a = parser.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    results = [one_size(n, a.runs if n <= 10000 else 1, n == 10000 or n == max(sizes),
                        a.networks) for n in sizes]
    base = results[0]
    target = THRESHOLD * INTERVAL + 1
    nets = f", {a.networks} networks (BIND views)" if a.networks > 1 else ""
    print(f"scale{nets}: failover records against a real named (threshold {THRESHOLD} x interval "
          f"{INTERVAL:g} s; target: the last name within {target:g} s of the kill, and "
          f"within 1.5x the {base['n']}-record RTO)")
    for r in results:
        last = r["rto_last"]
        assert isinstance(last, list)
        ratio = statistics.median(last) / statistics.median(base["rto_last"])  # type: ignore
        print(f"  N={r['n']:>6}: first convergence {r['converge_s']:6.2f} s; "
              f"RTO first p50 {statistics.median(r['rto_first']):.2f} s "  # type: ignore
              f"p99 {q(r['rto_first'], .99):.2f} s, last p50 {statistics.median(last):.2f} s "  # type: ignore
              f"p99 {q(last, .99):.2f} s ({ratio:.2f}x N={base['n']}); back (last) p50 "
              f"{statistics.median(r['back_last']):.2f} s; at rest {r['rest_cpu']:.1%} of a "  # type: ignore
              f"core, {r['rss_mb']:.0f} MB; tick p99 <= {r['tick_p99']} s; probe lag p99 "
              f"{(r['lag_p99'] or 0) * 1000:.1f} ms; errors in history {r['errors']}")
        if r["stages"]:
            print("           a failover write, p50: " + ", ".join(
                f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in r["stages"].items()))  # type: ignore
        for key in ("plan_no_read_s", "status_no_read_s", "status_s", "drain_s"):
            if key in r:
                print(f"           {key.removesuffix('_s').replace('_', ' ')}: {r[key]:.2f} s")
    if a.endpoints:
        e = endpoints_only(a.endpoints)
        print(f"  {a.endpoints} endpoints probed every second: {e['cpu']:.0%} of a core, "
              f"RSS {e['rss']:.0f} MB, probe lag p99 {e['lag'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
