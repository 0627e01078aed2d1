"""`failover demo` (what `make run` starts): the controller on an embedded default.

Starts a private named on loopback serving zone example.test. to two client networks,
each from its own BIND view (europe: clients in 127.0.0.128/25; default: every other
client), each view chosen by the client's address or by its TSIG key, one process of
regional HTTP endpoints per region (us-east-1 on 127.0.1.1, eu-west-1 on 127.0.2.1),
writes a config for them (each record answering europe its own way), and runs the
controller until interrupted. It prints how to watch each network's answer, fail a
region and drain one, for every network or for one. `--fleet N` runs N controllers on a
zone without views (and a secondary on ::1 would not follow views: the networks demo
has none).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from failover import children
from failover.errors import InputError
from failover.localdns import LocalNamed, free_port, port_free, write_private

REGIONS = {"us-east-1": "127.0.1.1", "eu-west-1": "127.0.2.1"}
# the client networks of the demo: each a BIND view, matched by key or by address
NETWORKS = {"europe": ["127.0.0.128/25"], "default": []}
EUROPE_CLIENT = "127.0.0.129"  # an address in europe's range, for `dig -b`
OTHER_CLIENT = "127.0.0.1"

CHECKS_AND_REGIONS = """checks:
  web:
    type: HTTP
    port: {http_port}
    resource_path: /health
    request_interval: 1
    failure_threshold: 3

regions:
  us-east-1:
    endpoints:
      - address: 127.0.1.1
        check: web
  eu-west-1:
    endpoints:
      - address: 127.0.2.1
        check: web
"""

NETWORKS_CONFIG = """# Written by `failover demo`: the shared contract's records answered per client
# network (europe, default), each network from its own BIND view, on the demo's ports.
zone: example.test.

provider:
  type: bind
  server: 127.0.0.1
  port: {dns_port}
  views:  # the key of each view chooses it: every read and write signs with it
    europe:
      tsig: {{name: view-europe, algorithm: hmac-sha256, secret_file: ./europe.key}}
    default:
      tsig: {{name: view-default, algorithm: hmac-sha256, secret_file: ./default.key}}

networks:
  europe:
    cidrs: [127.0.0.128/25]
  default: {{}}  # every other client

controller:
  state: ./failover.db
  listen: 127.0.0.1:{api_port}
  token_file: ./api.token

""" + CHECKS_AND_REGIONS + """
records:
  - name: api.example.test.
    type: A
    ttl: 30
    policy: failover
    order: [us-east-1, eu-west-1]
    failback_delay: 5
    networks:
      europe: {{order: [eu-west-1, us-east-1]}}
  - name: www.example.test.
    type: A
    ttl: 30
    policy: weighted
    weights: {{us-east-1: 70, eu-west-1: 30}}
    networks:
      europe: {{weights: {{us-east-1: 30, eu-west-1: 70}}}}
  - name: app.example.test.
    type: A
    ttl: 30
    policy: latency
    regions: [us-east-1, eu-west-1]
"""

# the fleet demo's: one answer for every client (a zone without views)
CONFIG = """# Written by `failover demo`: the shared contract, on the demo's own ports.
zone: example.test.

provider:
  type: bind
  server: 127.0.0.1
  port: {dns_port}
  tsig:
    name: failover-key
    algorithm: hmac-sha256
    secret_file: ./tsig.secret

controller:
  state: ./failover.db
  listen: 127.0.0.1:{api_port}

""" + CHECKS_AND_REGIONS + """
records:
  - name: api.example.test.
    type: A
    ttl: 30
    policy: failover
    order: [us-east-1, eu-west-1]
    failback_delay: 5
  - name: www.example.test.
    type: A
    ttl: 30
    policy: weighted
    weights: {{us-east-1: 70, eu-west-1: 30}}
  - name: app.example.test.
    type: A
    ttl: 30
    policy: latency
    regions: [us-east-1, eu-west-1]
"""


def start_region(name: str, host: str, port: int) -> subprocess.Popen[str]:
    """One endpoint process for a region; stop it with SIGSTOP/SIGKILL to fail the region."""
    proc = subprocess.Popen([sys.executable, "-m", "failover.fleet", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps([{"name": name, "host": host, "port": port, "behaviour": "ok"}]))
    proc.stdin.close()
    if not proc.stdout.readline():
        raise RuntimeError(f"the endpoint of {name} did not start")
    return proc


def own_directory(directory: Path) -> Path:
    """The demo's directory, created (0700) when missing and resolved. The demo writes
    its TSIG and rndc secrets there, so it refuses (InputError) a directory where another
    user could plant a symlink or swap a file: the directory (or a symlink on the way to
    it, or a directory above it) owned by another user (root's above it are fine), the
    directory writable by group or others, or a directory above it writable by others
    without the sticky bit (as /tmp has)."""
    me = os.geteuid()
    given = Path(os.path.abspath(directory))
    for link in (p for p in (*given.parents, given) if p.is_symlink()):
        if link.lstat().st_uid not in (me, 0):
            raise InputError(f"--dir {directory}: {link} is a symlink owned by user "
                             f"{link.lstat().st_uid}: it could point the demo's secrets "
                             "anywhere; give a directory of your own")
    try:
        given.mkdir(mode=0o700, parents=True, exist_ok=True)
        resolved = given.resolve(strict=True)
        st = os.lstat(resolved)
    except OSError as exc:
        raise InputError(f"--dir {directory}: {exc.strerror}") from None
    if st.st_uid != me:
        raise InputError(f"--dir {resolved} is owned by user {st.st_uid}, not by you "
                         f"({me}): its owner could plant symlinks that receive the demo's "
                         "secrets; give a directory of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InputError(f"--dir {resolved} is writable by group or others "
                         f"({stat.filemode(st.st_mode)}): they could plant symlinks that "
                         f"receive the demo's secrets; chmod go-w {resolved}, or give "
                         "another directory")
    for above in resolved.parents:
        st = os.lstat(above)
        if st.st_uid not in (me, 0):
            raise InputError(f"--dir {resolved} is inside {above}, owned by user "
                             f"{st.st_uid}, who could replace it; give a directory of your "
                             "own")
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise InputError(f"--dir {resolved} is inside {above}, which anyone may write "
                             "(no sticky bit), so anyone could replace it; give another "
                             "directory")
    return resolved


def _claim(directory: Path) -> None:
    """Hold the demo directory for this process (until it exits); raises InputError when
    another demo runs in it."""
    try:  # never through a symlink: it would truncate the file it names
        fd = os.open(directory / "demo.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(f"{directory / 'demo.lock'}: {exc.strerror} (a symlink? remove it)"
                         ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InputError(f"{directory} is in use by a running demo (PID {pid}): stop it, or "
                         "give this one another --dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held.append(fd)  # kept open (and so locked) for the life of the process


_held: list[int] = []


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_demo(directory: Path, dns_port: int = 15353, api_port: int = 9053) -> None:
    """Start everything, run the controller in the foreground, clean up on exit."""
    from failover.service import serve

    # killed by a signal before the controller's own handlers are up (or after): unwind,
    # so named and the endpoints are stopped by the ExitStack below, never left behind
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    directory = own_directory(directory)
    _claim(directory)  # before anything in it is written: a running demo keeps its files
    if not port_free("127.0.0.1", dns_port):
        dns_port = free_port()
    if not port_free("127.0.0.1", api_port, udp=False):
        api_port = free_port()
    http_port = free_port(*REGIONS.values())
    with ExitStack() as stack:
        # no secondary: a secondary follows one zone, and views serve one zone per network;
        # `failover drill` times each view on the primary instead
        named = LocalNamed.start(directory / "named", port=dns_port, views=NETWORKS)
        stack.callback(named.stop)
        for view, secret in named.view_keys.items():
            write_private(directory / f"{view}.key", secret + "\n")
        token = directory / "api.token"
        write_private(token, secrets.token_urlsafe(32) + "\n")
        procs = {}
        for name, host in REGIONS.items():
            proc = start_region(name, host, http_port)
            procs[name] = proc
            stack.callback(children.stop, proc)
        config = directory / "failover.yaml"
        write_private(config, NETWORKS_CONFIG.format(dns_port=dns_port, api_port=api_port,
                                                     http_port=http_port))
        exe = Path(sys.executable).parent / "failover"
        cli = str(exe) if exe.exists() else "failover"
        east, west = procs["us-east-1"].pid, procs["eu-west-1"].pid
        dig = f"dig @127.0.0.1 -p {dns_port} -b"
        body = '{"region": "us-east-1", "network": "default"}'
        print(f"""
failover demo: zone example.test. on a private named at 127.0.0.1:{dns_port}, answered per
client network from two views: europe (clients in {', '.join(NETWORKS['europe'])}) and
default (every other client)
  us-east-1: 127.0.1.1:{http_port} (pid {east})
  eu-west-1: 127.0.2.1:{http_port} (pid {west})
  config:  {config}

In another terminal:
  status page:        http://127.0.0.1:{api_port}/
  europe's answer:    {dig} {EUROPE_CLIENT} api.example.test +short   # 127.0.2.1
  default's answer:   {dig} {OTHER_CLIENT} api.example.test +short     # 127.0.1.1
  status:             {cli} status --config {config}
  fail us-east-1:     kill -STOP {east}   (default moves to 127.0.2.1; back: kill -CONT {east})
  fail eu-west-1:     kill -STOP {west}   (europe moves to 127.0.1.1; back: kill -CONT {west})
  drain / restore:    {cli} drain us-east-1 --config {config}
                      {cli} restore us-east-1 --config {config}
  drain for default:  {cli} drain us-east-1 --network default --config {config}
    (europe's answers stay; the API's form):
                      curl -s -X POST -H "Authorization: Bearer $(cat {token})" \\
                        -d '{body}' http://127.0.0.1:{api_port}/v1/drain
  drill (timed):      {cli} drill eu-west-1 --config {config}   (each view)
  history:            {cli} history --config {config}
  metrics:            curl -s 127.0.0.1:{api_port}/metrics | grep failover_
Ctrl-C stops the demo.
""", flush=True)
        for sig in (signal.SIGTERM, signal.SIGHUP):  # the controller's loop handles them
            signal.signal(sig, signal.SIG_DFL)
        serve(str(config), dry_run=False, once=False)


FLEET_VANTAGES = ("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1", "ap-northeast-1")


def run_fleet_demo(directory: Path, members: int, dns_port: int = 15353) -> None:
    """`failover demo --fleet N`: a private 3-member etcd, named, two regions and N
    controller processes (each its own vantage and API port) on loopback, until Ctrl-C."""
    import time

    from failover.localetcd import LocalEtcd

    if not 1 <= members <= len(FLEET_VANTAGES):
        raise InputError(f"--fleet: between 1 and {len(FLEET_VANTAGES)} instances, got "
                         f"{members}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    directory = own_directory(directory)
    _claim(directory)
    if not port_free("127.0.0.1", dns_port):
        dns_port = free_port()
    http_port = free_port(*REGIONS.values())
    with ExitStack() as stack:
        named = LocalNamed.start(directory / "named", port=dns_port)
        stack.callback(named.stop)
        etcd = LocalEtcd.start(directory / "etcd")
        stack.callback(etcd.stop)
        procs = {}
        for name, host in REGIONS.items():
            procs[name] = start_region(name, host, http_port)
            stack.callback(children.stop, procs[name])
        exe = Path(sys.executable).parent / "failover"
        cli = str(exe) if exe.exists() else "failover"
        instances = {}
        for vantage in FLEET_VANTAGES[:members]:
            d = directory / vantage
            d.mkdir(exist_ok=True)
            write_private(d / "tsig.secret", named.tsig_secret + "\n")
            api_port = free_port()
            text = CONFIG.format(dns_port=dns_port, api_port=api_port, http_port=http_port)
            text = text.replace("  state: ./failover.db\n", "").replace(
                f"  listen: 127.0.0.1:{api_port}\n",
                f"  listen: 127.0.0.1:{api_port}\n  cluster:\n"
                f"    etcd: {{endpoints: [{', '.join(etcd.endpoints)}], prefix: /failover/demo}}\n"
                f"    vantage: {vantage}\n    lease_ttl: 3\n"
                f"    vantages: [{', '.join(FLEET_VANTAGES[:members])}]\n")
            write_private(d / "failover.yaml", text)
            proc = subprocess.Popen([sys.executable, "-m", "failover", "run", "--config",
                                     str(d / "failover.yaml")],
                                    stderr=(d / "controller.log").open("a"),
                                    stdout=subprocess.DEVNULL, start_new_session=True)
            instances[vantage] = (proc, api_port, d / "failover.yaml")
            stack.callback(children.stop, proc)
        first = next(iter(instances.values()))[2]
        lines = "\n".join(f"  {v}: PID {p.pid}, status http://127.0.0.1:{port}/, log "
                          f"{c.parent / 'controller.log'}" for v, (p, port, c) in instances.items())
        print(f"""
failover demo --fleet {members}: etcd {', '.join(etcd.endpoints)}; zone example.test. at
127.0.0.1:{dns_port}; us-east-1 127.0.1.1:{http_port} (pid {procs['us-east-1'].pid}),
eu-west-1 127.0.2.1:{http_port} (pid {procs['eu-west-1'].pid})
{lines}

In another terminal:
  who leads:          {cli} status --config {first} | head -20
  the fence:          dig @127.0.0.1 -p {dns_port} _failover-leader.example.test TXT +short
  kill the leader:    kill -9 <its PID>   (another leads within ~3 s: watch `status`)
  fail us-east-1:     kill -STOP {procs['us-east-1'].pid}      (back: kill -CONT ...)
  drain (any config): {cli} drain us-east-1 --config {first}
Ctrl-C stops the fleet.
""", flush=True)
        try:
            while True:  # until Ctrl-C or SIGTERM; say when an instance exits on its own
                for vantage, (proc, _, _) in list(instances.items()):
                    if proc.poll() is not None:
                        print(f"{vantage} exited ({proc.returncode}); the others go on",
                              flush=True)
                        del instances[vantage]
                time.sleep(1)
        except (KeyboardInterrupt, SystemExit):
            print("stopping the fleet", flush=True)  # the exit stack stops every process
