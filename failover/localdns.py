"""A private BIND `named` on loopback, for the demo, drills, tests and benchmarks.

It runs in its own directory with free ports, a TSIG key for RFC 2136 updates, an rndc
key, one dynamic zone (updated with RFC 2136) and one file zone (rewritten and
reloaded), and is stopped by its PID.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
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
    IN NS ns1.{zone}
ns1 IN A 127.0.0.1
"""


def named_binary() -> str | None:
    """The path of `named`, or None when BIND is not installed."""
    return shutil.which("named") or (
        "/usr/sbin/named" if os.access("/usr/sbin/named", os.X_OK) else None)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`.

    BIND 9.18 binds with SO_REUSEPORT, so a second named on a taken port would start
    without error: check both protocols without that option first.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host}")


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

    @classmethod
    def start(cls, directory: Path, *, dynamic_zone: str = "example.test.",
              file_zone: str = "files.test.", port: int | None = None,
              tsig_name: str = "failover-key", tsig_secret: str | None = None,
              timeout: float = 15.0) -> LocalNamed:
        """Write the config and zones under `directory`, start named, wait until it answers.

        Raises RuntimeError with named's own output when it does not come up.
        """
        binary = named_binary()
        if binary is None:
            raise RuntimeError("named is not installed (apt-get install bind9 bind9-utils)")
        directory.mkdir(parents=True, exist_ok=True)
        secret = tsig_secret or base64.b64encode(os.urandom(32)).decode()
        self = cls(directory=directory, port=port or free_port(), rndc_port=free_port(),
                   tsig_name=tsig_name, tsig_secret=secret, dynamic_zone=dynamic_zone,
                   file_zone=file_zone)
        self._write_files()
        log = (directory / "named.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-g", "-c", str(directory / "named.conf"), "-n", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=directory, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

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
        """Stop named by its PID (TERM, then KILL after 10 s)."""
        if self.process is not None:
            children.stop(self.process)

    def restart(self, timeout: float = 15.0) -> None:
        """Start named again on the same ports (after `stop`)."""
        self.stop()
        binary = named_binary()
        assert binary is not None
        log = (self.directory / "named.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-g", "-c", str(self.directory / "named.conf"), "-n", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True)
        self._wait_ready(timeout)

    def log(self) -> str:
        """named's output so far."""
        path = self.directory / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _write_files(self) -> None:
        d = self.directory
        rndc_secret = base64.b64encode(os.urandom(32)).decode()
        serial = int(time.time()) % 2**31
        for zone in (self.dynamic_zone, self.file_zone):
            path = d / f"{zone.rstrip('.')}.zone"
            if not path.exists():
                path.write_text(ZONE_TEMPLATE.format(zone=zone, serial=serial))
            journal = Path(str(path) + ".jnl")
            if journal.exists():
                journal.unlink()
        (d / "named.conf").write_text(f"""
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {self.host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
    allow-transfer {{ key "{self.tsig_name}"; }};
    minimal-responses yes;
}};
key "{self.tsig_name}" {{ algorithm hmac-sha256; secret "{self.tsig_secret}"; }};
key "rndc-key" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};
controls {{
    inet {self.host} port {self.rndc_port} allow {{ {self.host}; }} keys {{ "rndc-key"; }};
}};
zone "{self.dynamic_zone.rstrip('.')}" {{
    type primary;
    file "{d}/{self.dynamic_zone.rstrip('.')}.zone";
    allow-update {{ key "{self.tsig_name}"; }};
}};
zone "{self.file_zone.rstrip('.')}" {{
    type primary;
    file "{d}/{self.file_zone.rstrip('.')}.zone";
}};
""")
        (d / "rndc.conf").write_text(f"""
key "rndc-key" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};
options {{ default-server {self.host}; default-port {self.rndc_port}; default-key "rndc-key"; }};
""")

    def _wait_ready(self, timeout: float) -> None:
        import dns.message
        import dns.query
        import dns.rcode

        deadline = time.monotonic() + timeout
        query = dns.message.make_query(self.dynamic_zone, "SOA")
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"named exited with {self.process.returncode}:\n{self.log()}")
            try:
                answer = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"named did not answer within {timeout:g} s:\n{self.log()}")
