"""A private BIND `named` on loopback, for the demo, drills, tests and benchmarks.

It runs in its own directory with free ports, a TSIG key for RFC 2136 updates, an rndc
key, one dynamic zone (updated with RFC 2136) and one file zone (rewritten and
reloaded), and is stopped by its PID. Optionally it has secondaries: one more named per
local address (named listens only on addresses an interface holds: ::1 beside
127.0.0.1), on the same port, serving the dynamic zone by NOTIFY and zone transfer
(TSIG-signed), each in the zone's NS set with its address as glue, as the authoritative
servers of a delegated zone are.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from failover import children

ZONE_TEMPLATE = """$ORIGIN {zone}
$TTL 300
@   IN SOA ns1.{zone} hostmaster.{zone} (
        {serial} ; serial
        3600       ; refresh
        600        ; retry
        86400      ; expire
        60 )       ; negative caching TTL
{ns}"""


def named_binary() -> str | None:
    """The path of `named`, or None when BIND is not installed."""
    return shutil.which("named") or (
        "/usr/sbin/named" if os.access("/usr/sbin/named", os.X_OK) else None)


def wait_serving(process: subprocess.Popen[bytes], host: str, port: int, zone: str,
                 timeout: float, what: str, log: Callable[[], str]) -> None:
    """Wait until a DNS server just started answers the zone's SOA; raises RuntimeError
    with its own output when it exits or stays silent."""
    import dns.message
    import dns.query
    import dns.rcode

    deadline = time.monotonic() + timeout
    query = dns.message.make_query(zone, "SOA")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        try:
            answer = dns.query.udp(query, host, port=port, timeout=0.2)
            if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                return
        except (OSError, dns.exception.Timeout):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {timeout:g} s:\n{log()}")


def write_private(path: Path, text: str) -> None:
    """Write a file that holds a secret: 0600 from its creation, never readable by others
    even for a moment, and never written through a symlink planted at `path` (a new
    file, created exclusively beside it, then renamed over it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: 0600, O_EXCL, O_NOFOLLOW
            f.write(text)
        os.replace(tmp, path)  # replaces a symlink itself, not the file it names
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def free_port(host: str = "127.0.0.1", *more: str) -> int:
    """A port free for both UDP and TCP on `host` (and on every address of `more`).

    BIND 9.18 binds with SO_REUSEPORT, so a second named on a taken port would start
    without error: check both protocols without that option first.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
        if all(port_free(h, port) for h in (host, *more)):
            return port
    raise RuntimeError(f"no port free on {', '.join((host, *more))}")


def port_free(host: str, port: int, udp: bool = True) -> bool:
    """Whether `port` can be bound on `host` for TCP (and UDP when asked); False also when
    the host has no such address (::1 without IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,):
            with socket.socket(family, kind) as s:
                s.bind((host, port))
    except OSError:  # taken, or no such address (or family) here
        return False
    return True


@dataclass
class LocalNamed:
    """A running private named; use `LocalNamed.start(directory)` and `stop()`."""

    directory: Path
    port: int
    rndc_port: int
    tsig_name: str
    tsig_secret: str
    dynamic_zone: str
    file_zone: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    primary: LocalNamed | None = field(default=None, repr=False)  # set on a secondary
    secondaries: list[LocalNamed] = field(default_factory=list)
    # a second key, allowed to transfer the zone but not to update it
    other_name: str = "other-key"
    other_secret: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode(),
                              repr=False)
    # BIND views of the dynamic zone, in match order (default last): view -> the client
    # addresses it answers; each view is chosen by its key, view_keys[view] (key name
    # `view-<view>`), or by the client's address
    views: dict[str, list[str]] = field(default_factory=dict)
    view_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def start(cls, directory: Path, *, dynamic_zone: str = "example.test.",
              file_zone: str = "files.test.", port: int | None = None,
              tsig_name: str = "failover-key", tsig_secret: str | None = None,
              secondaries: Sequence[str] = (), timeout: float = 15.0,
              host: str = "127.0.0.1",
              views: dict[str, list[str]] | None = None) -> LocalNamed:
        """Write the config and zones under `directory`, start named, wait until it answers.

        `secondaries`: local addresses (e.g. ::1) that each run one more named on the
        same port, secondary for the dynamic zone. `views`: the dynamic zone served from
        one view per client network instead (view -> client ranges; `default` answers
        every other client), each with its own key. Raises RuntimeError with
        named's own output when one does not come up.
        """
        if named_binary() is None:
            raise RuntimeError("named is not installed (apt-get install bind9 bind9-utils)")
        directory.mkdir(parents=True, exist_ok=True)
        secret = tsig_secret or base64.b64encode(os.urandom(32)).decode()
        self = cls(directory=directory, port=port or free_port(host, *secondaries),
                   rndc_port=free_port(), tsig_name=tsig_name, tsig_secret=secret,
                   dynamic_zone=dynamic_zone, file_zone=file_zone, host=host,
                   views=dict(views or {}),
                   view_keys={v: base64.b64encode(os.urandom(32)).decode()
                              for v in views or {}})
        self.secondaries = [
            cls(directory=directory / f"secondary-{host.replace(':', '_')}", port=self.port,
                rndc_port=free_port(),
                tsig_name=tsig_name, tsig_secret=secret, dynamic_zone=dynamic_zone,
                file_zone=file_zone, host=host, primary=self) for host in secondaries]
        self._write_files()
        try:
            self._run(timeout, "wb")
            for secondary in self.secondaries:
                secondary.directory.mkdir(parents=True, exist_ok=True)
                secondary._write_files()
                secondary._run(timeout, "wb")
        except Exception:
            self.stop()
            raise
        return self

    @property
    def servers(self) -> list[tuple[str, int]]:
        """Every authoritative server of the dynamic zone: this one, then the secondaries."""
        return [(self.host, self.port), *((s.host, s.port) for s in self.secondaries)]

    @property
    def rndc_command(self) -> list[str]:
        """The rndc command (with its config) that controls this named."""
        rndc = shutil.which("rndc") or "/usr/sbin/rndc"
        return [rndc, "-c", str(self.directory / "rndc.conf")]

    @property
    def file_zone_path(self) -> Path:
        """The zone file of the file zone."""
        return self.directory / f"{self.file_zone.rstrip('.')}.zone"

    def rndc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run rndc against this named; raises CalledProcessError on failure."""
        return subprocess.run([*self.rndc_command, *args], capture_output=True, text=True,
                              timeout=30, check=True)

    def stop(self) -> None:
        """Stop named (and its secondaries) by PID (TERM, then KILL after 10 s)."""
        for secondary in self.secondaries:
            secondary.stop()
        if self.process is not None:
            children.stop(self.process)

    def rekey(self, secret: str) -> None:
        """Give the update key a new secret (its secondaries too), as an operator rotating
        it does: named.conf rewritten, then `rndc reconfig`; the old secret is refused
        from then on. Raises CalledProcessError when rndc fails."""
        for server in (self, *self.secondaries):
            conf = server.directory / "named.conf"
            text = conf.read_text()
            old = f'key "{server.tsig_name}" {{ algorithm hmac-sha256; secret "'
            assert f'{old}{server.tsig_secret}"' in text, "named.conf has no such key"
            write_private(conf, text.replace(f'{old}{server.tsig_secret}"', f'{old}{secret}"'))
            server.tsig_secret = secret
            server.rndc("reconfig")

    def restart(self, timeout: float = 15.0) -> None:
        """Start this named again on the same ports (after `stop`); secondaries stay as
        they are."""
        if self.process is not None:
            children.stop(self.process)
        self._run(timeout, "ab")

    def log(self) -> str:
        """named's output so far."""
        path = self.directory / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, timeout: float, mode: str) -> None:
        binary = named_binary()
        assert binary is not None
        log = (self.directory / "named.log").open(mode)
        self.process = subprocess.Popen(
            [binary, "-g", "-c", str(self.directory / "named.conf"), "-n", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True)
        self._wait_ready(timeout)

    def _write_files(self) -> None:
        d = self.directory
        rndc_secret = base64.b64encode(os.urandom(32)).decode()
        write_private(d / "rndc.conf", f"""
key "rndc-key" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};
options {{ default-server 127.0.0.1; default-port {self.rndc_port}; default-key "rndc-key"; }};
""")
        v6 = self.host if ":" in self.host else "none"
        common = f"""
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {self.host if v6 == "none" else "none"}; }};
    listen-on-v6 port {self.port} {{ {v6}; }};
    recursion no;
    notify no;
    notify-delay 0;
    dnssec-validation no;
    allow-transfer {{ key "{self.tsig_name}"; key "{self.other_name}"; }};
    minimal-responses yes;
}};
key "{self.tsig_name}" {{ algorithm hmac-sha256; secret "{self.tsig_secret}"; }};
key "{self.other_name}" {{ algorithm hmac-sha256; secret "{self.other_secret}"; }};
key "rndc-key" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};
controls {{
    inet 127.0.0.1 port {self.rndc_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }};
}};
"""
        dynamic = self.dynamic_zone.rstrip(".")
        if self.primary is not None:
            # start empty: a copy left by an earlier run may carry a higher serial than the
            # primary's, and a secondary never transfers a zone whose serial went back
            for stale in (d / f"{dynamic}.zone", d / f"{dynamic}.zone.jnl"):
                stale.unlink(missing_ok=True)
            p = self.primary
            write_private(d / "named.conf", common + f"""
zone "{dynamic}" {{
    type secondary;
    primaries {{ {p.host} port {p.port} key "{self.tsig_name}"; }};
    allow-notify {{ {p.host}; ::1; }};
    file "{d}/{dynamic}.zone";
}};
""")
            return
        serial = int(time.time()) % 2**31
        if self.views:
            write_private(d / "named.conf", common + self._views_conf(serial))
            return
        for zone in (self.dynamic_zone, self.file_zone):
            path = d / f"{zone.rstrip('.')}.zone"
            if not path.exists():
                ns = [self.host] + ([s.host for s in self.secondaries]
                                    if zone == self.dynamic_zone else [])
                names = "".join(f"    IN NS ns{i}.{zone}\n" for i in range(1, len(ns) + 1))
                glue = "".join(f"ns{i} IN {'AAAA' if ':' in h else 'A'} {h}\n"
                               for i, h in enumerate(ns, 1))
                path.write_text(ZONE_TEMPLATE.format(zone=zone, serial=serial, ns=names + glue))
            journal = Path(str(path) + ".jnl")
            if journal.exists():
                journal.unlink()
        notify = "".join(f"{s.host} port {s.port}; " for s in self.secondaries)
        write_private(d / "named.conf", common + f"""
zone "{dynamic}" {{
    type primary;
    file "{d}/{dynamic}.zone";
    allow-update {{ key "{self.tsig_name}"; }};
    {f"notify explicit; also-notify {{ {notify}}};" if notify else ""}
}};
zone "{self.file_zone.rstrip('.')}" {{
    type primary;
    file "{d}/{self.file_zone.rstrip('.')}.zone";
}};
""")

    def view_zone_path(self, view: str) -> Path:
        """The zone file of the dynamic zone in one view."""
        return self.directory / f"{self.dynamic_zone.rstrip('.')}.{view}.zone"

    def _views_conf(self, serial: int) -> str:
        """One view per client network, each chosen by its key or its clients' addresses
        (the recipe of docs/providers.md), with the dynamic zone updated by its key."""
        zone = self.dynamic_zone
        out = "".join(f'key "view-{v}" {{ algorithm hmac-sha256; secret "{k}"; }};\n'
                      for v, k in self.view_keys.items())
        for view, clients in self.views.items():
            path = self.view_zone_path(view)
            path.write_text(ZONE_TEMPLATE.format(
                zone=zone, serial=serial,
                ns=f"    IN NS ns1.{zone}\nns1 IN A {self.host}\n"))
            Path(str(path) + ".jnl").unlink(missing_ok=True)
            others = "".join(f'!key "view-{o}"; ' for o in self.views if o != view)
            match = " ".join(f"{c};" for c in clients) or "any;"
            key = f'key "view-{view}"'
            out += f"""
view "{view}" {{
    match-clients {{ {key}; {others}{match} }};
    zone "{zone.rstrip('.')}" {{
        type primary;
        file "{path}";
        allow-update {{ {key}; }};
        allow-transfer {{ {key}; }};
    }};
}};
"""
        return out

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        wait_serving(self.process, self.host, self.port, self.dynamic_zone, timeout, "named",
                     self.log)
