"""Zone files: rewrite only the managed records, keep every other byte, reload, confirm.

The edit: read the file, find the logical records (parentheses, comments, inherited
owners and $ORIGIN understood) of the managed (name, type) pairs, remove them and put
the new ones where the first stood (else at the end), bump the SOA serial, check the
result with named-checkzone, replace the file atomically, reload (rndc returns before
the zone is loaded) and wait until the server serves the new serial and answers.
A dynamic zone (with a journal) is frozen and thawed around the edit, or refused.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.rdatatype
import dns.zone

from failover import children
from failover.dns.base import ApplyReport, DnsConflict, DnsError, DnsUnavailable, confirm
from failover.dns.served import served, soa_serial
from failover.plan import ChangeSet, ManagedKey, apply_to
from failover.records import RecordSet

if TYPE_CHECKING:
    from failover.config import ZonefileProvider
    from failover.dns.ownership import Registry

log = logging.getLogger(__name__)

READ_TYPES = ("A", "AAAA", "CNAME", "TXT")
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|;[^\n]*|[()]|[^\s();"]+')
TTL = re.compile(r"^\d+[smhdwSMHDW]?(\d+[smhdwSMHDW])*$")
CLASSES = {"IN", "CH", "HS", "CS"}
BLOCK_HEADER = "; failover: the records below are managed by the failover controller\n"


@dataclass(frozen=True)
class Entry:
    """One logical record of a zone file: its lines (0-based, inclusive), owner and type."""

    first: int
    last: int
    owner: str
    type: str
    inherited: bool  # the owner field was blank: it repeats the previous record's owner


def _absolute(name: str, origin: str) -> str:
    if name == "@":
        return origin
    return (name if name.endswith(".") else f"{name}.{origin}").lower()


def scan(lines: Sequence[str], origin: str) -> list[Entry]:
    """The logical records of a zone file. Raises DnsError on $INCLUDE."""
    entries: list[Entry] = []
    last_owner = origin
    i = 0
    while i < len(lines):
        tokens: list[str] = []
        depth, j = 0, i
        while True:
            for m in TOKEN.finditer(lines[j]):
                t = m.group()
                if t.startswith(";"):
                    continue
                if t in "()":
                    depth += 1 if t == "(" else -1
                    continue
                tokens.append(t)
            if depth <= 0 or j == len(lines) - 1:
                break
            j += 1
        start, i = i, j + 1
        if not tokens:
            continue
        if tokens[0].startswith("$"):
            directive = tokens[0].upper()
            if directive == "$ORIGIN" and len(tokens) > 1:
                origin = _absolute(tokens[1], origin)
            elif directive == "$INCLUDE":
                raise DnsError("zone files with $INCLUDE are not supported: keep the managed "
                               "names in the main file")
            continue
        inherited = lines[start][:1] in (" ", "\t")
        owner = last_owner if inherited else _absolute(tokens[0], origin)
        last_owner = owner
        rest = tokens if inherited else tokens[1:]
        rtype = next((t.upper() for t in rest if not TTL.match(t) and t.upper() not in CLASSES),
                     "")
        entries.append(Entry(start, j, owner, rtype, inherited))
    return entries


def _serial_token(entry: Entry, lines: Sequence[str]) -> tuple[str, re.Match[str]]:
    block = "".join(lines[entry.first:entry.last + 1])
    tokens = [m for m in TOKEN.finditer(block) if not m.group().startswith(";")
              and m.group() not in "()"]
    soa_at = next(i for i, m in enumerate(tokens) if m.group().upper() == "SOA")
    return block, tokens[soa_at + 3]


def file_serial(entry: Entry, lines: Sequence[str]) -> int:
    """The serial of the SOA record `entry`."""
    return int(_serial_token(entry, lines)[1].group())


def bump_serial(entry: Entry, lines: list[str]) -> tuple[list[str], int]:
    """The lines with the SOA serial of `entry` increased by one (RFC 1982 arithmetic)."""
    block, serial_tok = _serial_token(entry, lines)
    new = (int(serial_tok.group()) + 1) % 2**32 or 1
    block = block[:serial_tok.start()] + str(new) + block[serial_tok.end():]
    return lines[:entry.first] + block.splitlines(keepends=True) + lines[entry.last + 1:], new


class ZonefileAdapter:
    """A zone kept as a file that BIND (or another server) serves and reloads."""

    native_routing = False

    def __init__(self, zone: str, provider: ZonefileProvider, path: Path) -> None:
        self.zone = zone
        self.provider = provider
        self.path = path
        self.server = str(provider.server)
        self.port = provider.port
        rndc = provider.rndc
        self.commands = {
            "freeze": provider.freeze_command or f"{rndc} freeze {{zone}}",
            "thaw": provider.thaw_command or f"{rndc} thaw {{zone}}",
            "reload": provider.reload or f"{rndc} reload {{zone}}",
            "check": provider.check_command or "named-checkzone -q {zone} {file}"}

    def prepare(self) -> None:
        """Nothing to set up before a write."""

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """No provider-side attributes: the desired records as they are."""
        return desired

    # ------------------------------------------------------------------------ read

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """The managed record sets (with a `registry`, also the names it marked outside
        `keys`): from the file, or for a dynamic zone (freeze) from the server, whose
        journal may be ahead of the file until the next freeze."""
        if self.provider.freeze:
            wanted = set(keys)
            if registry is not None:
                # the names it marked were written through the file (freeze, edit, thaw):
                # the file lists them, the server says what they hold now
                wanted |= registry.keys_of(registry.orphans(self._records(self._text()),
                                                            wanted))
            return self.served(wanted)
        self._refuse_dynamic()
        listing = self._records(self._text())
        if registry is not None:
            return registry.pick(listing, set(keys))
        wanted = set(keys)
        return [rs for rs in listing if (rs.name, rs.type) in wanted]

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """What the server answers now."""
        return served(self.server, self.port, keys, self.provider.timeout)

    def _records(self, text: str, keys: Collection[ManagedKey] | None = None
                 ) -> list[RecordSet]:
        """The record sets of the file (of READ_TYPES; only `keys` when given)."""
        wanted = set(keys) if keys is not None else None
        try:
            zone = dns.zone.from_text(text, origin=self.zone, relativize=False,
                                      check_origin=False)
        except dns.exception.DNSException as exc:
            raise DnsError(f"cannot parse {self.path}: {exc}") from None
        out = []
        for name, node in zone.nodes.items():
            for rds in node.rdatasets:
                key = (name.to_text().lower(), dns.rdatatype.to_text(rds.rdtype))
                if key in wanted if wanted is not None else key[1] in READ_TYPES:
                    out.append(RecordSet.make(key[0], key[1], rds.ttl,
                                              [rd.to_text() for rd in rds]))
        return out

    def _text(self) -> str:
        try:
            return self.path.read_text()
        except OSError as exc:
            raise DnsError(f"cannot read zone file {self.path}: {exc.strerror}") from None

    def _refuse_dynamic(self, text: str | None = None) -> None:
        """Refuse to edit the file of a zone that takes dynamic updates: BIND's journal
        beside the file, or (any server: Knot keeps its journal elsewhere) a served
        serial ahead of the file's, which means changes live outside the file."""
        journal = Path(f"{self.path}.jnl")
        why = f"{journal} exists" if journal.exists() else None
        if why is None:
            lines = (text if text is not None else self._text()).splitlines(keepends=True)
            soa = next((e for e in scan(lines, self.zone) if e.type == "SOA"), None)
            served_serial = soa_serial(self.server, self.port, self.zone, self.provider.timeout)
            if soa is not None and served_serial is not None:
                mine = file_serial(soa, lines)
                if served_serial != mine and (served_serial - mine) % 2**32 < 2**31:
                    why = (f"{self.server}:{self.port} serves serial {served_serial}, ahead "
                           f"of the file's {mine}")
        if why is not None:
            raise DnsError(f"{self.zone} is a dynamic zone ({why}): editing its file would "
                           "lose updates; set provider.freeze: true (with freeze_command and "
                           "thaw_command for your server), or use provider rfc2136 instead")

    # ----------------------------------------------------------------------- write

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Rewrite the managed records, check, replace, reload and confirm.

        Raises DnsConflict when the file no longer holds what was planned against,
        DnsError when named-checkzone rejects the result (the old file stays), and
        DnsUnavailable when the reload is not served in time.
        """
        report = ApplyReport(changes=len(changes.changes))
        if not changes:
            return report
        start = time.monotonic()
        frozen = False
        if self.provider.freeze:
            self._command("freeze")
            frozen = True
            self._wait_file_synced()
        else:
            self._refuse_dynamic()
        try:
            text = self._text()
            keys = changes.managed
            now = {r.key: r for r in self._records(text, keys)}
            planned = {r.key: r for r in actual if (r.name, r.type) in keys}
            if now != planned:
                raise DnsConflict(f"{self.path} changed since it was read: reading again "
                                  "and re-planning")
            new_text, serial = self._rewrite(text, apply_to(actual, changes), keys)
            self._check(new_text)
            self._replace(new_text)
        except BaseException:
            if frozen:
                self._command("thaw")
            raise
        self._command("thaw" if frozen else "reload")  # BIND's thaw reloads the file
        report.messages = 1
        report.applied_s = time.monotonic() - start
        self._wait_serial(serial)
        report.confirmed_s = confirm(self.served, changes, actual,
                                     timeout=self.provider.timeout)
        log.info("event=dns_applied zone=%s file=%s changes=%d serial=%d applied_ms=%.1f "
                 "confirmed_ms=%.1f", self.zone, self.path, report.changes, serial,
                 report.applied_s * 1000, report.confirmed_s * 1000)
        return report

    def _rewrite(self, text: str, after: Sequence[RecordSet],
                 keys: Collection[ManagedKey]) -> tuple[str, int]:
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        entries = scan(lines, self.zone)
        soa = next((e for e in entries if e.type == "SOA"), None)
        if soa is None:
            raise DnsError(f"{self.path} has no SOA record")
        lines, serial = bump_serial(soa, lines)
        entries = scan(lines, self.zone)
        drop = [e for e in entries if (e.owner, e.type) in keys]
        dropped = {i for e in drop for i in range(e.first, e.last + 1)}
        block = [f"{r.name} {r.ttl} IN {r.type} {v}\n" for r in after
                 if (r.name, r.type) in keys for v in r.values]
        if not any(line == BLOCK_HEADER for line in lines):
            block.insert(0, BLOCK_HEADER)
        at = drop[0].first if drop else len(lines)
        out: list[str] = []
        previous_dropped = False
        for e_index, line in enumerate(lines):
            if e_index == at:
                out.extend(block)
            if e_index in dropped:
                previous_dropped = True
                continue
            entry = next((e for e in entries if e.first == e_index), None)
            if entry is not None:
                if entry.inherited and previous_dropped:
                    line = entry.owner + line  # its owner was on a line we removed
                previous_dropped = False
            out.append(line)
        if at >= len(lines):
            out.extend(block)
        return "".join(out), serial

    def _check(self, text: str) -> None:
        if not self.provider.checkzone:
            return
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, suffix=".check",
                                         delete=False) as tmp:
            tmp.write(text)
        argv = self._argv("check", tmp.name)
        try:
            result = self._execute(argv)
            if result.returncode != 0:
                detail = (result.stdout + result.stderr).strip()
                if not detail and argv[0].endswith("named-checkzone"):  # -q says nothing
                    detail = self._execute([a for a in argv if a != "-q"]).stdout.strip()
                raise DnsError(f"{argv[0]} rejected the new {self.path}; the old file is "
                               f"kept: {detail}")
        except FileNotFoundError:
            raise DnsError(f"{argv[0]} is not installed (for BIND: bind9-utils); set "
                           "provider.check_command, or provider.checkzone: false to skip "
                           "the check") from None
        finally:
            os.unlink(tmp.name)

    def _replace(self, text: str) -> None:
        mode = self.path.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _wait_file_synced(self) -> None:
        """After a freeze, wait until the file holds the journal (its serial is served)."""
        deadline = time.monotonic() + self.provider.timeout
        while True:
            served_serial = soa_serial(self.server, self.port, self.zone, self.provider.timeout)
            lines = self._text().splitlines(keepends=True)
            soa = next((e for e in scan(lines, self.zone) if e.type == "SOA"), None)
            if soa is not None and file_serial(soa, lines) == served_serial:
                return
            if time.monotonic() > deadline:
                self._command("thaw")
                raise DnsUnavailable(f"{self.path} was not synced with the served zone "
                                     f"{self.provider.timeout:g} s after the freeze")
            time.sleep(0.005)

    def _wait_serial(self, serial: int) -> None:
        deadline = time.monotonic() + self.provider.timeout
        while True:
            current = soa_serial(self.server, self.port, self.zone, self.provider.timeout)
            if current is not None and (current - serial) % 2**32 < 2**31:
                return  # serial reached (or passed, RFC 1982)
            if time.monotonic() > deadline:
                raise DnsUnavailable(f"{self.server}:{self.port} still serves serial {current} of "
                                     f"{self.zone}, not {serial}, {self.provider.timeout:g} s "
                                     "after the reload")
            time.sleep(0.005)

    def _argv(self, what: str, file: str | None = None) -> list[str]:
        """A configured command as arguments, {zone} and {file} replaced."""
        zone, path = self.zone.rstrip("."), file or str(self.path)
        return [a.replace("{zone}", zone).replace("{file}", path)
                for a in shlex.split(self.commands[what])]

    def _command(self, what: str) -> None:
        self._run(self._argv(what), what)

    def _execute(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a command with a minimal environment: the controller's own holds its
        secrets (API token, TSIG, AWS keys), which a reload or check has no use for."""
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              env=children.environment(self.provider.pass_env))

    def _run(self, argv: list[str], what: str) -> None:
        try:
            result = self._execute(argv)
        except FileNotFoundError:
            raise DnsError(f"{what}: {argv[0]} is not installed") from None
        if result.returncode != 0:
            raise DnsUnavailable(f"{what} failed ({shlex.join(argv)}): "
                                 f"{(result.stderr or result.stdout).strip()}")
