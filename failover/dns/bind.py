"""BIND (or any RFC 2136 server): read by AXFR, write by TSIG-signed UPDATE, confirm by query.

Every change carries a prerequisite on what was read (RFC 2136 section 2.4): a create
needs the RRset absent, an upsert or delete needs it to hold exactly the values read.
An update planned on a stale read is therefore refused by the server (YXRRSET/NXRRSET)
and surfaces as DnsConflict, so the caller reads again and re-plans: a concurrent edit
is never overwritten. Timeouts and SERVFAIL are retried with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from failover.dns.base import (
    ApplyReport,
    DnsConflict,
    DnsRejected,
    DnsUnavailable,
    confirm,
)
from failover.dns.served import ask, retry, served
from failover.plan import Change, ChangeSet, ManagedKey
from failover.records import RecordSet

if TYPE_CHECKING:
    from pydantic import SecretStr

    from failover.config import BindProvider

log = logging.getLogger(__name__)

READ_TYPES = ("A", "AAAA", "CNAME", "TXT")
UDP_LIMIT = 1232  # larger updates go over TCP (the EDNS-safe size used by DNS Flag Day 2020)
TCP_LIMIT = 65000  # larger change sets are split into several UPDATE messages


class BindAdapter:
    """RFC 2136 dynamic updates with TSIG, for one zone on one primary."""

    native_routing = False

    def __init__(self, zone: str, provider: BindProvider, secret: SecretStr | None) -> None:
        self.zone = zone
        self.origin = dns.name.from_text(zone)
        self.server = str(provider.server)
        self.port = provider.port
        self.timeout = provider.timeout
        self.transport = provider.transport
        self.keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self.keyname: dns.name.Name | None = None
        if provider.tsig is not None and secret is not None:
            self.keyname = dns.name.from_text(provider.tsig.name)
            self.keyring = {self.keyname: dns.tsig.Key(
                self.keyname, secret.get_secret_value(),
                dns.name.from_text(provider.tsig.algorithm))}
        self.where = f"{self.server}:{self.port}"

    def prepare(self) -> None:
        """Nothing to set up before a write."""

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """No provider-side attributes: the desired records as they are."""
        return desired

    # ------------------------------------------------------------------------ read

    def read(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """The actual record sets for `keys`, by AXFR (queries when AXFR is refused)."""
        wanted = set(keys)
        try:
            records = retry(self._axfr)
        except _TransferRefused as exc:
            log.warning("event=axfr_refused server=%s zone=%s reason=%r: reading managed "
                        "names one query at a time", self.where, self.zone, str(exc))
            return self.served(wanted)
        return [r for r in records if (r.name, r.type) in wanted]

    def _axfr(self) -> list[RecordSet]:
        try:
            zone = dns.zone.Zone(self.origin)
            query, _ = dns.xfr.make_query(zone, **self._tsig_kwargs())
            dns.query.inbound_xfr(self.server, zone, query, port=self.port,
                                  timeout=self.timeout, lifetime=self.timeout * 3)
        except dns.xfr.TransferError as exc:
            raise _TransferRefused(f"zone transfer of {self.zone} refused by {self.where}: "
                              f"{dns.rcode.to_text(exc.rcode)}") from None
        except (dns.tsig.PeerError, dns.tsig.BadTime) as exc:
            raise DnsRejected(self._tsig_message(exc)) from None
        except (dns.exception.Timeout, TimeoutError):
            raise DnsUnavailable(f"no answer from {self.where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DnsUnavailable(f"cannot reach {self.where}: {exc.strerror or exc}") from None
        out = []
        for name, node in zone.nodes.items():
            absolute = name.derelativize(self.origin).to_text().lower()
            for rds in node.rdatasets:
                rtype = dns.rdatatype.to_text(rds.rdtype)
                if rtype in READ_TYPES:
                    out.append(RecordSet.make(absolute, rtype, rds.ttl, [
                        rd.to_text(origin=self.origin, relativize=False) for rd in rds]))
        return out

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """Ask the server for each key (plain queries, as resolvers do)."""
        return served(self.server, self.port, keys, self.timeout)

    # ----------------------------------------------------------------------- write

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Send the changes as few UPDATE messages as fit, then confirm they are served.

        Raises DnsConflict (stale read: re-plan), DnsRejected (TSIG, REFUSED, NOTAUTH),
        DnsUnavailable (after retries) or DnsUnconfirmed.
        """
        report = ApplyReport(changes=len(changes.changes))
        if not changes:
            return report
        start = time.monotonic()
        for batch in self._batches(list(changes.changes)):
            update = self._update(batch)
            self._send_update(update, tcp=self.transport == "tcp"
                              or len(update.to_wire()) > UDP_LIMIT)
            report.messages += 1
        report.applied_s = time.monotonic() - start
        report.confirmed_s = confirm(self.served, changes, actual)
        log.info("event=dns_applied zone=%s changes=%d messages=%d applied_ms=%.1f "
                 "confirmed_ms=%.1f", self.zone, report.changes, report.messages,
                 report.applied_s * 1000, report.confirmed_s * 1000)
        return report

    def _batches(self, changes: list[Change]) -> list[list[Change]]:
        if len(changes) <= 1 or len(self._update(changes).to_wire()) <= TCP_LIMIT:
            return [changes]
        half = len(changes) // 2
        return self._batches(changes[:half]) + self._batches(changes[half:])

    def _update(self, changes: Sequence[Change]) -> dns.update.UpdateMessage:
        upd = dns.update.UpdateMessage(self.origin, **self._tsig_kwargs())
        for c in changes:
            r = c.record
            name = dns.name.from_text(r.name)
            if c.action == "create":
                upd.absent(name, r.type)
                upd.add(name, r.ttl, r.type, *r.values)
                continue
            before = c.before if c.action == "upsert" else r
            assert before is not None
            upd.present(name, _rdataset(before))
            if c.action == "upsert":
                upd.replace(name, r.ttl, r.type, *r.values)
            else:
                upd.delete(name, r.type)
        return upd

    def _send_update(self, update: dns.update.UpdateMessage, tcp: bool) -> None:
        response = self._exchange(update, tcp=tcp)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.YXDOMAIN,
                     dns.rcode.NXDOMAIN):
            raise DnsConflict(f"{self.zone} changed since it was read ({text} from {self.where}):"
                              " reading again and re-planning")
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.NOTZONE):
            raise DnsRejected(f"update of {self.zone} refused by {self.where}: {text}"
                              + (" (is the TSIG key allowed to update this zone?)"
                                 if rcode == dns.rcode.REFUSED else ""))
        raise DnsUnavailable(f"update of {self.zone} failed at {self.where}: {text}")

    # ------------------------------------------------------------------- transport

    def _exchange(self, message: dns.message.Message, tcp: bool) -> dns.message.Message:
        """Send with retries on timeouts, unreachable servers and SERVFAIL."""
        return retry(lambda: self._once(message, tcp))

    def _once(self, message: dns.message.Message, tcp: bool) -> dns.message.Message:
        try:
            return ask(self.server, self.port, message, self.timeout, tcp=tcp)
        except (dns.tsig.PeerError, dns.tsig.BadTime) as exc:
            raise DnsRejected(self._tsig_message(exc)) from None
        except dns.message.UnknownTSIGKey:
            raise DnsRejected(f"{self.where} answered with a TSIG key we do not know") from None

    def _tsig_kwargs(self) -> dict[str, Any]:
        if self.keyring is None:
            return {}
        return {"keyring": self.keyring, "keyname": self.keyname}

    def _tsig_message(self, exc: Exception) -> str:
        key = self.keyname.to_text() if self.keyname else "(none)"
        if isinstance(exc, dns.tsig.PeerBadTime | dns.tsig.BadTime):
            # TSIG signs the time: the two clocks must agree within the fudge (300 s)
            return (f"{self.where} rejected TSIG key {key} (BADTIME): this host's clock and "
                    "the server's differ by more than 300 s; check that both keep time (NTP)")
        kind = {dns.tsig.PeerBadKey: "BADKEY: it does not know the key",
                dns.tsig.PeerBadSignature: "BADSIG: the secret does not match"}
        why = next((v for k, v in kind.items() if isinstance(exc, k)), str(exc))
        return f"{self.where} rejected TSIG key {key} ({why}): check provider.tsig"


class _TransferRefused(DnsRejected):
    """AXFR refused by policy: the caller falls back to queries."""


def _rdataset(rs: RecordSet) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text("IN", rs.type, 0, *rs.values)
