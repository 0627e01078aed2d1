"""Private Knot DNS and PowerDNS servers on loopback, for the interop suite.

Each serves `example.test.` (dynamic: RFC 2136 updates and AXFR with the key
`failover-key`) and knows a second key, `other-key`, allowed to transfer but not to
update. They offer what the tests use of LocalNamed: `port`, `host`, `servers`,
`tsig_name`, `tsig_secret`, `dynamic_zone`, `directory`, `stop()`, `restart()`, `log()`.
Started by their PID, stopped by it.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from failover import children
from failover.localdns import free_port, wait_serving, write_private

ZONE = "example.test."
SOA = "ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60"
PDNS_SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")


def _secret() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class _Server:
    directory: Path
    port: int
    tsig_secret: str
    other_secret: str
    tsig_name: str = "failover-key"
    other_name: str = "other-key"
    dynamic_zone: str = ZONE
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    kind = "server"

    @property
    def servers(self) -> list[tuple[str, int]]:
        return [(self.host, self.port)]

    def stop(self) -> None:
        if self.process is not None:
            children.stop(self.process)

    def restart(self, timeout: float = 15.0) -> None:
        self.stop()
        self._run(timeout, "ab")

    def log(self) -> str:
        path = self.directory / f"{self.kind}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _run(self, timeout: float, mode: str) -> None:
        log = (self.directory / f"{self.kind}.log").open(mode)
        self.process = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.directory, start_new_session=True)
        try:
            wait_serving(self.process, self.host, self.port, self.dynamic_zone, timeout,
                         self.kind, self.log)
        except RuntimeError:
            self.stop()
            raise


@dataclass
class LocalKnot(_Server):
    """knotd with the zone from a file, its journal in its own database."""

    kind = "knot"

    @classmethod
    def start(cls, directory: Path, timeout: float = 15.0) -> LocalKnot:
        if shutil.which("knotd") is None and not Path("/usr/sbin/knotd").exists():
            raise RuntimeError("knotd is not installed (apt-get install knot)")
        directory.mkdir(parents=True, exist_ok=True)
        self = cls(directory=directory, port=free_port(), tsig_secret=_secret(),
                   other_secret=_secret())
        d = directory
        (d / "db").mkdir(exist_ok=True)  # knotd does not create its journal's directory
        (d / "example.test.zone").write_text(
            f"$TTL 60\n@ IN SOA {SOA}\n  IN NS ns1.example.test.\nns1 IN A 127.0.0.1\n")
        (d / "files.test.zone").write_text(
            f"$TTL 60\n@ IN SOA {SOA.replace('example', 'files')}\n  IN NS ns1.files.test.\n"
            "ns1 IN A 127.0.0.1\n")
        write_private(d / "knot.conf", f"""
server:
    listen: {self.host}@{self.port}
    rundir: {d}
    pidfile: {d}/knot.pid
log:
  - target: stderr
    any: info
database:
    storage: {d}/db
control:
    listen: {d}/knot.sock
key:
  - id: {self.tsig_name}
    algorithm: hmac-sha256
    secret: {self.tsig_secret}
  - id: {self.other_name}
    algorithm: hmac-sha256
    secret: {self.other_secret}
acl:
  - id: writer
    key: {self.tsig_name}
    action: [update, transfer]
  - id: reader
    key: {self.other_name}
    action: transfer
zone:
  - domain: example.test.
    file: {d}/example.test.zone
    acl: [writer, reader]
    zonefile-sync: -1
    journal-content: changes
  - domain: files.test.
    file: {d}/files.test.zone
    acl: [writer, reader]
""")
        self._run(timeout, "wb")
        return self

    @property
    def knotc(self) -> str:
        """knotc for this server (its control socket), for zonefile commands."""
        return f"knotc -c {self.directory / 'knot.conf'}"

    def _argv(self) -> list[str]:
        return [shutil.which("knotd") or "/usr/sbin/knotd", "-c",
                str(self.directory / "knot.conf")]


@dataclass
class LocalPdns(_Server):
    """pdns_server with the gsqlite3 backend; keys and metadata set with pdnsutil before
    it starts (PowerDNS caches metadata up to 60 s)."""

    kind = "pdns"

    @classmethod
    def start(cls, directory: Path, timeout: float = 15.0, backend: str = "gsqlite3"
              ) -> LocalPdns:
        """`backend` gsqlite3 (updates and transfers), or bind (zone files: no updates,
        PowerDNS answers them NOTIMP)."""
        if shutil.which("pdns_server") is None and not Path("/usr/sbin/pdns_server").exists():
            raise RuntimeError("pdns_server is not installed (apt-get install pdns-server "
                               "pdns-backend-sqlite3)")
        directory.mkdir(parents=True, exist_ok=True)
        self = cls(directory=directory, port=free_port(), tsig_secret=_secret(),
                   other_secret=_secret())
        d = directory
        database = d / "pdns.sqlite3"
        database.unlink(missing_ok=True)
        if backend == "gsqlite3":
            db = sqlite3.connect(database)
            db.executescript(PDNS_SCHEMA.read_text())
            db.close()
            launch = f"launch=gsqlite3\ngsqlite3-database={database}"
        else:
            (d / "example.test.zone").write_text(
                f"$TTL 60\n@ IN SOA {SOA}\n  IN NS ns1.example.test.\nns1 IN A 127.0.0.1\n")
            (d / "named.conf").write_text(
                f'zone "example.test" {{ type master; file "{d}/example.test.zone"; }};\n')
            launch = (f"launch=bind\nbind-config={d}/named.conf\n"
                      f"bind-dnssec-db={database}")
        write_private(d / "pdns.conf", f"""
{launch}
local-address={self.host}
local-port={self.port}
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
allow-axfr-ips=
security-poll-suffix=
socket-dir={d}
guardian=no
daemon=no
disable-syslog=yes
webserver=no
api=no
loglevel=4
""")
        z = "example.test."
        setup = ([["create-zone", z, "ns1.example.test."],
                  ["replace-rrset", z, "@", "SOA", "60", SOA]] if backend == "gsqlite3"
                 else [["create-bind-db", str(database)]])
        for args in (*setup,
                     ["import-tsig-key", self.tsig_name, "hmac-sha256", self.tsig_secret],
                     ["import-tsig-key", self.other_name, "hmac-sha256", self.other_secret],
                     ["set-meta", z, "TSIG-ALLOW-DNSUPDATE", self.tsig_name],
                     ["set-meta", z, "TSIG-ALLOW-AXFR", self.tsig_name, self.other_name],
                     # one serial step per update, as BIND and Knot do
                     ["set-meta", z, "SOA-EDIT-DNSUPDATE", "INCREASE"]):
            self.pdnsutil(*args)
        self._run(timeout, "wb")
        return self

    def pdnsutil(self, *args: str) -> str:
        result = subprocess.run([shutil.which("pdnsutil") or "/usr/bin/pdnsutil",
                                 f"--config-dir={self.directory}", *args],
                                capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pdnsutil {' '.join(args[:2])}: {result.stderr.strip()}")
        return result.stdout

    def _argv(self) -> list[str]:
        return [shutil.which("pdns_server") or "/usr/sbin/pdns_server",
                f"--config-dir={self.directory}"]
