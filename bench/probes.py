"""Health checks at scale: the controller against gdnsd and HAProxy, on the same endpoints.

One nginx serves `/health` on N loopback addresses (127.1.x.y, one port). Each checker
runs as a private process with its own config, one after the other, against it:
  - the controller: `failover run` (provider none), one HTTP check per endpoint;
  - gdnsd 3.8 (`http_status`; its interval floor is 2 s, so two service types at 2 s
    give one check per second and address; at 10 s, two at 20 s);
  - HAProxy 2.6 (`option httpchk`, `inter` = the interval);
  - with --baseline-root, the controller of another checkout (the same venv), run
    alternately with this one.
For each size (endpoints x interval) and checker, over a window after a warm-up:
achieved checks/s (counted at nginx by stub_status), CPU us per check and share of a
core (utime + stime of the checker's process tree from /proc, reaped children
included), the controller's schedule lag p99 (its /metrics gauge) and RSS (process
tree); then each controller's ratios to the peers.

Targets (10,000 x 1 s): >= 9,900 checks/s, lag p99 <= 50 ms, CPU per check <= 2x
HAProxy's, RSS <= 300 MB; 10,000 x 10 s: <= 15 % of a core, lag p99 <= 50 ms.

Usage: python bench/probes.py [--sizes 1000x1,5000x1,10000x1,10000x10] [--window 15]
       [--tools controller,gdnsd,haproxy] [--baseline-root DIR] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SBIN = ["/usr/sbin", "/sbin"]


def address(i: int) -> str:
    """The i-th endpoint's loopback address (127.0.0.0/8 is all loopback on Linux)."""
    return f"127.1.{i // 250}.{i % 250 + 1}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def which(name: str) -> str:
    for d in [*os.environ.get("PATH", "").split(":"), *SBIN]:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    sys.exit(f"{name} not found: run `bash .ci/system-deps` (as root) first")


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ------------------------------------------------------------------ process figures

def tree(pid: int) -> list[int]:
    """A process and its live descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU of a process tree: utime + stime of each, and of the children each reaped."""
    total = 0
    for p in tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / TICKS


def rss_mb(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a checker by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def raise_nofile(n: int = 20000) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


# ----------------------------------------------------------------------------- nginx

@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    status_port: int

    def requests(self) -> int:
        """Requests nginx has answered since it started (stub_status)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.status_port}/stub",
                                    timeout=5) as r:
            text = r.read().decode()
        return int(text.splitlines()[2].split()[2])


def start_nginx(d: Path, n: int) -> Nginx:
    port, status_port = free_port(address(0)), free_port()
    listens = "".join(f"    listen {address(i)}:{port};\n" for i in range(n))
    (d / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log error;
worker_rlimit_nofile 20000;
events {{ worker_connections {n + 6000}; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
{listens}
    location = /health {{ default_type text/plain; return 200 "ok\\n"; }}
    location / {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:{status_port};
    location = /stub {{ stub_status; }}
  }}
}}
""")
    proc = subprocess.Popen([which("nginx"), "-c", str(d / "nginx.conf"), "-p", str(d)],
                            stdout=subprocess.DEVNULL, stderr=(d / "nginx-error.log").open("ab"),
                            preexec_fn=raise_nofile)
    ng = Nginx(proc, port, status_port)

    def up() -> bool:
        try:
            ng.requests()
            return True
        except OSError:
            return False

    if not wait_for(up, 60):
        stop(proc)
        sys.exit("nginx did not start: " + (d / "nginx-error.log").read_text()[-2000:])
    return ng


# -------------------------------------------------------------------------- checkers

@dataclass
class Checker:
    name: str
    proc: subprocess.Popen[bytes]
    metrics_url: str | None = None

    def lag_p99(self) -> float | None:
        if self.metrics_url is None:
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        m = re.search(r"^failover_probe_schedule_lag_p99_seconds ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else None

    def ready(self) -> bool:
        if self.metrics_url is None:
            return True
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                return "failover_ready 1.0" in r.read().decode()
        except OSError:
            return False


def start_controller(d: Path, n: int, interval: float, port: int, root: Path,
                     name: str, workers: int | None = None) -> Checker:
    api = free_port()
    eps = "".join(f"      - {{address: {address(i)}, check: web}}\n" for i in range(n))
    cfg = d / "failover.yaml"
    setting = "" if workers is None else f", probe_workers: {workers}"
    cfg.write_text(
        "zone: example.test.\nprovider: {type: none}\n"
        f"controller: {{state: ./failover.db, listen: '127.0.0.1:{api}'{setting}}}\n"
        f"checks:\n  web: {{type: HTTP, port: {port}, resource_path: /health, "
        f"request_interval: {interval:g}, failure_threshold: 3}}\n"
        "regions:\n  big:\n    endpoints:\n" + eps
        + "records:\n  - {name: api.example.test., type: A, policy: weighted, "
          "weights: {big: 1}}\n")
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-m", "failover", "run", "--config", str(cfg)],
                            cwd=d, env=env, stdout=subprocess.DEVNULL,
                            stderr=(d / "controller.log").open("ab"), preexec_fn=raise_nofile)
    return Checker(name, proc, f"http://127.0.0.1:{api}/metrics")


def start_haproxy(d: Path, n: int, interval: float, port: int) -> Checker:
    servers = "".join(f"  server s{i} {address(i)}:{port}\n" for i in range(n))
    (d / "haproxy.cfg").write_text(f"""
global
  maxconn 4000
defaults
  mode http
  timeout connect 4s
  timeout client 2s
  timeout server 2s
  timeout check 2s
frontend unused
  bind 127.0.0.1:{free_port()}
  default_backend health
backend health
  option httpchk GET /health
  default-server check inter {interval:g}s fall 3 rise 3
{servers}""")
    proc = subprocess.Popen([which("haproxy"), "-f", str(d / "haproxy.cfg"), "-db", "-q"],
                            stdout=subprocess.DEVNULL, stderr=(d / "haproxy.log").open("ab"),
                            preexec_fn=raise_nofile)
    return Checker("haproxy", proc)


def start_gdnsd(d: Path, n: int, interval: float, port: int) -> Checker:
    # gdnsd's interval floor is 2 s: two service types at 2x the interval check each
    # address once per interval between them
    every = max(2.0, 2 * interval)
    (d / "zones").mkdir(exist_ok=True)
    (d / "zones" / "example.test").write_text(
        "@ SOA ns1 admin 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.1\n")
    service = (f"plugin => http_status, port => {port}, url_path => /health, "
               f"interval => {every:g}, timeout => {min(2.0, every - 1):g}, "
               "up_thresh => 3, ok_thresh => 3, down_thresh => 3")
    resources = "".join(f"      r{i} => {{ a => {address(i)} }}\n" for i in range(n))
    (d / "config").write_text(f"""
options => {{
  listen => [ 127.0.0.1 ]
  dns_port => {free_port()}
  run_dir => {d}/run
  state_dir => {d}/state
}}
service_types => {{
  ta => {{ {service} }}
  tb => {{ {service} }}
}}
plugins => {{
  multifo => {{
    service_types => [ ta, tb ]
{resources}  }}
}}
""")
    proc = subprocess.Popen([which("gdnsd"), "-c", str(d), "start"],
                            stdout=subprocess.DEVNULL, stderr=(d / "gdnsd.log").open("ab"),
                            preexec_fn=raise_nofile)
    return Checker("gdnsd", proc)


# ------------------------------------------------------------------------ measuring

def measure(start: Callable[[Path], Checker], ng: Nginx, interval: float, window: float,
            ) -> dict[str, float | None]:
    with tempfile.TemporaryDirectory(prefix="probes-bench-") as tmp:
        d = Path(tmp)
        c = start(d)
        try:
            t0 = time.monotonic()
            if not wait_for(lambda: c.proc.poll() is not None or c.ready(), 300, 0.2) or \
                    c.proc.poll() is not None:
                logs = "".join(p.read_text()[-1500:] for p in d.glob("*.log"))
                raise RuntimeError(f"{c.name} did not start: {logs}")
            # warm-up: first rounds done, start-up bursts over
            first = ng.requests()
            wait_for(lambda: ng.requests() > first, 60)
            time.sleep(max(10.0, 1.5 * interval))
            startup = time.monotonic() - t0
            r0, c0, w0 = ng.requests(), cpu_seconds(c.proc.pid), time.monotonic()
            lags = []
            # /metrics read twice a window (as a scrape every window/2 s): its exposition
            # of 10,000 endpoints is work the controller does for each read
            for k in (1, 2):
                time.sleep(max(0.0, w0 + k * window / 2 - time.monotonic()))
                lag = c.lag_p99()
                if lag is not None:
                    lags.append(lag)
            r1, c1, w1 = ng.requests(), cpu_seconds(c.proc.pid), time.monotonic()
            rss = rss_mb(c.proc.pid)
            alive = c.proc.poll() is None
        finally:
            stop(c.proc)
    checks = r1 - r0 - 1  # stub_status's own request
    cpu = c1 - c0
    return {"rate": checks / (w1 - w0), "cpu_us": cpu / max(checks, 1) * 1e6,
            "share": cpu / (w1 - w0), "lag_ms": max(lags) * 1000 if lags else None,
            "rss": rss, "startup": startup, "alive": float(alive)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000x1,5000x1,10000x1,10000x10",
                   help="endpoints x interval (s), comma-separated")
    p.add_argument("--window", type=float, default=12.0, help="seconds measured per run")
    p.add_argument("--tools", default="controller,gdnsd,haproxy")
    p.add_argument("--baseline-root", type=Path,
                   help="another checkout whose controller runs alternately with this one")
    p.add_argument("--rounds", type=int, default=1, help="runs of each checker per size")
    p.add_argument("--workers", type=int,
                   help="controller.probe_workers for this checkout (default: its own)")
    a = p.parse_args()
    sizes = [(int(n), float(i)) for n, i in (s.split("x") for s in a.sizes.split(","))]
    tools = a.tools.split(",")
    names = [t for t in tools if t != "controller"]
    if "controller" in tools:
        names = (["controller"] + (["main"] if a.baseline_root else [])) + names
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="probes-nginx-") as tmp:
        ng = start_nginx(Path(tmp), max(n for n, _ in sizes))
        print(f"nginx (pid {ng.proc.pid}) serving /health on {max(n for n, _ in sizes):,} "
              f"loopback addresses, port {ng.port}; window {a.window:g} s per run")
        try:
            for n, interval in sizes:
                starts: dict[str, Callable[[Path], Checker]] = {
                    "controller": lambda d, n=n, i=interval: start_controller(
                        d, n, i, ng.port, ROOT, "controller", a.workers),
                    "main": lambda d, n=n, i=interval: start_controller(
                        d, n, i, ng.port, a.baseline_root, "main"),
                    "gdnsd": lambda d, n=n, i=interval: start_gdnsd(d, n, i, ng.port),
                    "haproxy": lambda d, n=n, i=interval: start_haproxy(d, n, i, ng.port),
                }
                runs: dict[str, list[dict[str, float | None]]] = {k: [] for k in names}
                for _ in range(a.rounds):
                    for k in names:  # alternating: each round runs every checker once
                        runs[k].append(measure(starts[k], ng, interval, a.window))
                report(n, interval, runs)
        finally:
            stop(ng.proc)


def med(rs: list[dict[str, float | None]], key: str) -> float | None:
    vals = [r[key] for r in rs if r[key] is not None]
    return statistics.median(vals) if vals else None  # type: ignore[type-var]


def report(n: int, interval: float, runs: dict[str, list[dict[str, float | None]]]) -> None:
    print(f"\n{n:,} endpoints x {interval:g} s (due {n / interval:,.0f} checks/s), "
          f"medians of {len(next(iter(runs.values())))} run(s):")
    m = {k: {key: med(rs, key) for key in rs[0]} for k, rs in runs.items()}
    for k, r in m.items():
        lag = f"{r['lag_ms']:7.1f} ms" if r["lag_ms"] is not None else "      -   "
        print(f"  {k:<10} {r['rate']:8,.0f} checks/s  {r['cpu_us']:6.0f} us CPU/check  "
              f"{r['share']:5.2f} core  lag p99 {lag}  RSS {r['rss']:6.0f} MB  "
              f"(start-up {r['startup']:.0f} s{'' if r['alive'] else ', DIED'})")
    for k in ("controller", "main"):
        if k not in m:
            continue
        for peer in ("gdnsd", "haproxy", "main"):
            if peer in m and peer != k and m[peer]["cpu_us"] and m[peer]["rate"]:
                print(f"  {k} / {peer}: CPU per check {m[k]['cpu_us'] / m[peer]['cpu_us']:.2f}x,"
                      f" checks/s {m[k]['rate'] / m[peer]['rate']:.2f}x")


if __name__ == "__main__":
    main()
