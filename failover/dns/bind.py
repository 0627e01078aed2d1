"""BIND (or any RFC 2136 server): read by AXFR, write by TSIG-signed UPDATE, confirm by query.

Every change carries a prerequisite on what was read (RFC 2136 section 2.4): a create
needs the RRset absent, an upsert or delete needs it to hold exactly the values read.
An update planned on a stale read is therefore refused by the server (YXRRSET/NXRRSET)
and surfaces as DnsConflict, so the caller reads again and re-plans: a concurrent edit
is never overwritten. Timeouts and SERVFAIL are retried with backoff.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone

from failover.dns.base import (
    DEFAULT_OWNER,
    ApplyReport,
    DnsConflict,
    DnsFenced,
    DnsRejected,
    DnsServerFailed,
    DnsUnavailable,
    check_writer,
    confirm,
    fence_epoch,
    fence_name,
    fence_value,
    take_fence,
    unlisted,
)
from failover.dns.served import connected_udp, retry, served, soa_serial
from failover.dns.signing import SigningKey
from failover.dns.wire import Signer, fence_prerequisite, pack_updates
from failover.plan import Change, ChangeSet, ManagedKey
from failover.records import RecordSet

if TYPE_CHECKING:
    from pydantic import SecretStr

    from failover.config import BindProvider
    from failover.dns.ownership import Registry

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_TYPES = ("A", "AAAA", "CNAME", "TXT")
UDP_LIMIT = 1232  # larger updates go over TCP (the EDNS-safe size used by DNS Flag Day 2020)


class BindAdapter:
    """RFC 2136 dynamic updates with TSIG, for one zone on one primary."""

    native_routing = False

    def __init__(self, zone: str, provider: BindProvider,
                 key: SigningKey | SecretStr | None) -> None:
        """`key`: the TSIG key (a bare secret: the provider's key, never read again)."""
        self.zone = zone
        self.origin = dns.name.from_text(zone)
        self.server = str(provider.server)
        self.port = provider.port
        self.timeout = provider.timeout
        self.transport = provider.transport
        self.key: SigningKey | None = None
        if provider.tsig is not None and key is not None:
            self.key = key if isinstance(key, SigningKey) else SigningKey(
                provider.tsig.name, provider.tsig.algorithm, key)
        self.keyname = self.key.name if self.key is not None else None
        self.where = f"{self.server}:{self.port}"
        self.epoch: int | None = None  # a fleet leader's epoch: every write is fenced by it
        self.may_write: Callable[[], bool] | None = None  # a fleet leader's deadline check
        self.holder = ""
        self._fenced: str | None = None  # the fence TXT's value at our last write
        self.renewed: int | None = None  # a single controller's renewal stamp
        self.fence_owner = DEFAULT_OWNER  # whose fence: ownership.owner_id
        # a view's adapter: queries are signed too, so the view chosen by the key answers
        self.sign_queries = False
        self._unlisted_said = False  # the warning that the zone cannot be listed was given

    @property
    def signer(self) -> Signer | None:
        return self.key.signer if self.key is not None else None

    @property
    def query_signer(self) -> Signer | None:
        """What signs queries: nothing (resolvers ask unsigned), or for a view's adapter
        its key, so the view chosen by the key answers."""
        return self.signer if self.sign_queries else None

    @property
    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key] | None:
        return self.key.keyring if self.key is not None else None

    # ----------------------------------------------------------------------- fence

    def fence(self, epoch: int | None, holder: str = "", renewed: int | None = None) -> None:
        """Fence every write from now on with `epoch` (None: no fence); `renewed`: a
        single controller's renewal stamp."""
        self.epoch, self.holder, self.renewed = epoch, holder, renewed

    @property
    def fence_text(self) -> str:
        assert self.epoch is not None
        return fence_value(self.epoch, self.holder, self.renewed)

    def read_fence(self) -> list[str]:
        """The fence TXT's values as the primary serves them ([] when absent)."""
        found = served(self.server, self.port, [(fence_name(self.zone, self.fence_owner), "TXT")],
                       self.timeout, self.query_signer)
        return [v for rs in found for v in rs.values]

    def take_over(self) -> bool:
        """Replace the fence with this leader's epoch, atomically: the UPDATE requires the
        value read (or its absence), so two leaders cannot both win. True when it wrote.
        Raises DnsFenced when the fence already holds a newer epoch."""
        return self._signed(self._take_over)

    def _take_over(self) -> bool:
        epoch = self.epoch
        if epoch is None or self._fenced == self.fence_text:
            return False
        import dns.update

        name = dns.name.from_text(fence_name(self.zone, self.fence_owner))
        mine = self.fence_text

        def replace(values: list[str]) -> bool:
            upd = dns.update.UpdateMessage(self.origin, **self._tsig_kwargs())
            if values:
                upd.present(name, dns.rdataset.from_text_list("IN", "TXT", 0, values))
            else:
                upd.absent(name, "TXT")
            upd.replace(name, 60, "TXT", mine)
            try:
                self._check(retry(functools.partial(self._send_one, upd)))
            except DnsConflict:
                return False
            return True

        took = take_fence(self.zone, epoch, mine, lambda: retry(self.read_fence), replace)
        self._fenced = mine
        return took

    def _send_one(self, upd: Any) -> dns.message.Message:
        check_writer(self.may_write)
        try:
            if self.transport == "tcp":
                return dns.query.tcp(upd, self.server, port=self.port, timeout=self.timeout)
            return dns.query.udp(upd, self.server, port=self.port, timeout=self.timeout)
        except (dns.tsig.PeerError, dns.tsig.BadTime) as exc:
            raise self._tsig_error(exc) from None
        except dns.message.UnknownTSIGKey:
            raise DnsRejected(f"{self.where} answered with a TSIG key we do not know") from None
        except dns.exception.FormError as exc:
            if "requires a TSIG" in str(exc):  # PowerDNS: REFUSED, unsigned, to a bad key
                raise self._key_refused("update", "an unsigned answer") from None
            raise DnsUnavailable(f"bad answer from {self.where}: {exc}") from None
        except (dns.exception.Timeout, TimeoutError):
            raise DnsUnavailable(f"no answer from {self.where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DnsUnavailable(f"cannot reach {self.where}: {exc.strerror or exc}") from None

    def _fence_rr(self) -> bytes:
        if self.epoch is None:
            return b""
        return fence_prerequisite(fence_name(self.zone, self.fence_owner), self.fence_text)

    def _fenced_conflict(self) -> None:
        """After a refused prerequisite: raise DnsFenced when a newer leader holds the
        fence (else the zone changed: the caller re-reads, and takes the fence again)."""
        if self.epoch is None:
            return
        try:
            held = fence_epoch(self.read_fence())
        except DnsUnavailable:
            return
        if held is not None and held > self.epoch:
            raise DnsFenced(f"update of {self.zone} refused by {self.where}: a newer leader "
                            f"(epoch {held}) holds the fence; this instance (epoch "
                            f"{self.epoch}) was deposed", held)
        if held != self.epoch:
            self._fenced = None  # the fence is not ours (removed by hand?): take it again

    def prepare(self) -> None:
        """Nothing to set up before a write."""

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """No provider-side attributes: the desired records as they are."""
        return desired

    # ------------------------------------------------------------------------ read

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """The actual record sets for `keys` (and with a `registry`, the names it marked
        outside them), by AXFR; by queries when AXFR is refused, which find `keys` only."""
        wanted = set(keys)
        try:
            records = self._signed(functools.partial(retry, self._axfr))
        except _TransferRefused as exc:
            log.warning("event=axfr_refused server=%s zone=%s reason=%r: reading managed "
                        "names one query at a time", self.where, self.zone, str(exc))
            if registry is not None and not self._unlisted_said:
                self._unlisted_said = True
                unlisted(self.zone, f"{exc}: allow the TSIG key to transfer the zone")
            return self.served(wanted)
        if registry is not None:
            return registry.pick(records, wanted)
        return [r for r in records if (r.name, r.type) in wanted]

    def listing(self) -> list[RecordSet]:
        """Every A, AAAA, CNAME and TXT record set of the zone, by one AXFR (signed with
        the key). Raises DnsRejected when the transfer or the key is refused,
        DnsUnavailable when the server does not answer."""
        return self._signed(functools.partial(retry, self._axfr))

    def _axfr(self) -> list[RecordSet]:
        try:
            zone = dns.zone.Zone(self.origin)
            query, _ = dns.xfr.make_query(zone, **self._tsig_kwargs())
            dns.query.inbound_xfr(self.server, zone, query, port=self.port,
                                  timeout=self.timeout, lifetime=self.timeout * 3)
        except dns.xfr.TransferError as exc:
            if self.keyring is not None and exc.rcode == dns.rcode.NOTAUTH:
                # PowerDNS answers a signed transfer with a wrong secret (or a key it does
                # not have) NOTAUTH, unsigned: a key problem, not a transfer policy
                raise self._key_refused("transfer", "NOTAUTH") from None
            raise _TransferRefused(f"zone transfer of {self.zone} refused by {self.where}: "
                                   f"{dns.rcode.to_text(exc.rcode)}") from None
        except dns.tsig.PeerBadKey as exc:
            # Knot answers BADKEY for a key it knows but whose acl does not allow transfer
            # (and for a key it does not know): queries can still read the zone
            raise _TransferRefused(self._tsig_message(exc)) from None
        except dns.exception.FormError as exc:
            if "requires a TSIG" in str(exc):
                raise self._key_refused("transfer", "an unsigned answer") from None
            raise DnsUnavailable(f"bad answer from {self.where}: {exc}") from None
        except (dns.tsig.PeerError, dns.tsig.BadTime) as exc:
            raise self._tsig_error(exc) from None
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

    def serial(self) -> int | None:
        """The zone's SOA serial as the primary serves it (a cheap "has it changed")."""
        return soa_serial(self.server, self.port, self.zone, self.timeout, self.query_signer)

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """Ask the server for each key (plain queries, as resolvers do; signed for a
        view)."""
        return served(self.server, self.port, keys, self.timeout, self.query_signer)

    # ----------------------------------------------------------------------- write

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Send the changes in as few UPDATE messages as fit (each below 64 KiB, a name's
        changes always in one message), over one TCP connection when there are several,
        then confirm they are served.

        A name whose changes fit no message is left out and reported in
        `ApplyReport.rejected`; everything else is written. Raises DnsConflict (stale
        read: re-plan), DnsRejected (TSIG, REFUSED, NOTAUTH), DnsUnavailable (after
        retries) or DnsUnconfirmed. A refused key is tried again once when its secret
        file holds a new secret (SigningKey.reread).
        """
        return self._signed(functools.partial(self._apply, changes, actual))

    def _apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        report = ApplyReport(changes=len(changes.changes))
        if not changes:
            return report
        start = time.monotonic()
        if self.epoch is not None and self._fenced != self.fence_text:
            self.take_over()
        fence = self._fence_rr()
        messages, too_large = pack_updates(self.zone, changes.groups(), self.signer,
                                           fence=fence)
        for name, size in too_large:
            report.rejected[name] = (f"its changes take {size} bytes, more than one UPDATE "
                                     "message holds (64 KiB): too many values for one record")
        sent: list[Change] = []
        conflict: DnsConflict | None = None
        wires = [m.wire(self.zone, self.signer) for m in messages]
        tcp = self.transport == "tcp" or len(wires) > 1 or any(
            len(w) > UDP_LIMIT for w, _, _ in wires)
        with _Stream(self.server, self.port, self.timeout, tcp, self) as stream:
            for msg, (wire, msg_id, mac) in zip(messages, wires, strict=True):
                try:
                    self._check(retry(functools.partial(stream.exchange, wire, msg_id, mac)))
                except DnsConflict as exc:
                    conflict = exc  # the other messages carry their own prerequisites
                    continue
                except _Refused as exc:
                    # one record set the server will not take (a name its check-names
                    # refuses) must not keep every other name in the message unwritten
                    ok, refused, n = self._isolate(stream, changes.only(msg.changes).groups(),
                                                   exc)
                    sent.extend(ok)
                    report.messages += n
                    report.rejected.update(refused)
                    continue
                sent.extend(msg.changes)
                report.messages += 1
        report.applied_s = time.monotonic() - start
        if conflict is not None:
            self._fenced_conflict()
            raise conflict
        report.confirmed_s = confirm(self.served, changes.only(sent), actual)
        log.info("event=dns_applied zone=%s changes=%d messages=%d applied_ms=%.1f "
                 "confirmed_ms=%.1f", self.zone, report.changes, report.messages,
                 report.applied_s * 1000, report.confirmed_s * 1000)
        return report

    def _isolate(self, stream: _Stream, groups: list[list[Change]],
                 refused: _Refused) -> tuple[list[Change], dict[str, str], int]:
        """Send the names of a refused message in halves until each refused name stands
        alone; returns the changes written, the names refused (with the server's answer)
        and the messages sent. Raises `refused` when the server refuses everything (the
        key, not a record) or the search grows too long."""
        def send(part: list[list[Change]]) -> bool:
            msgs, _ = pack_updates(self.zone, part, self.signer, fence=self._fence_rr())
            for m in msgs:  # a part of a message fits one message
                wire, msg_id, mac = m.wire(self.zone, self.signer)
                self._check(retry(functools.partial(stream.exchange, wire, msg_id, mac)))
            return True

        if len(groups) == 1:
            raise refused  # one name alone: the key or the record, no telling which
        ok: list[Change] = []
        bad: dict[str, str] = {}
        budget = 40 + 16 * len(groups).bit_length()  # halvings for a few bad names
        sent = 0
        pending = [groups]
        while pending:
            part = pending.pop()
            mid = len(part) // 2
            for half in (part[:mid], part[mid:]):
                if not half:
                    continue
                sent += 1
                if sent > budget:
                    raise refused
                try:
                    send(half)
                except _Refused as exc:
                    if len(half) == 1:
                        bad[half[0][0].record.name] = self._refusal(half[0][0].record.name, exc)
                        if len(bad) >= 2 and not ok:
                            raise refused from None  # refused alone, one after another: the key
                    else:
                        pending.append(half)
                    continue
                ok.extend(c for g in half for c in g)
        if not ok:
            raise refused
        return ok, bad, sent

    def _refusal(self, name: str, exc: _Refused) -> str:
        return (f"refused by {self.where} when sent alone ({exc.rcode}): the server will not "
                "take this record set (BIND: check-names, or a policy on this name; its log "
                "says which)")

    def _check(self, response: dns.message.Message) -> None:
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in (dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.YXDOMAIN,
                     dns.rcode.NXDOMAIN):
            raise DnsConflict(f"{self.zone} changed since it was read ({text} from {self.where}):"
                              " reading again and re-planning")
        if rcode == dns.rcode.REFUSED:
            key = self.keyname.to_text() if self.keyname else "(no key)"
            raise _Refused(f"update of {self.zone} refused by {self.where}: {text} (is TSIG "
                           f"key {key} allowed to update this zone? BIND: allow-update or "
                           "update-policy; PowerDNS: TSIG-ALLOW-DNSUPDATE)", text)
        if rcode == dns.rcode.NOTIMP:
            raise DnsRejected(f"{self.where} does not take dynamic updates for {self.zone} "
                              "(NOTIMP): its backend cannot write (PowerDNS: the bind backend; "
                              "use a database backend such as gsqlite3, or provider zonefile)")
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.NOTZONE):
            raise DnsRejected(f"update of {self.zone} refused by {self.where}: {text}")
        raise DnsUnavailable(f"update of {self.zone} failed at {self.where}: {text}")

    # ------------------------------------------------------------------------ tsig

    def _signed(self, send: Callable[[], T]) -> T:
        """`send()`; when the server refuses the key, its secret file is read again and,
        when the secret there changed, `send()` once more with the new one. Raises
        DnsRejected saying what the file held when the server refuses the key anyway."""
        signer = self.signer
        try:
            return send()
        except _KeyRefused as exc:
            found = self.key.reread(exc.answer, signer) if self.key is not None else None
            if found is None:
                raise  # no file to read again: the secret came from the environment
            if not found.changed:
                raise DnsRejected(f"{exc}; {found.refused()}") from None
        try:
            return send()
        except _KeyRefused as exc:
            raise DnsRejected(f"{exc}; {found.refused()}") from None

    def _tsig_kwargs(self) -> dict[str, Any]:
        if self.keyring is None:
            return {}
        return {"keyring": self.keyring, "keyname": self.keyname}

    def _key_problem(self, operation: str, answer: str) -> str:
        """A signed request answered as a key problem, naming what to check (never the
        secret)."""
        key = self.keyname.to_text() if self.keyname else "(none)"
        return (f"{self.where} answered the TSIG-signed {operation} of {self.zone} with "
                f"{answer}: it does not accept key {key} (a wrong secret, a key it does not "
                f"have, or a key not allowed to {operation}); check provider.tsig and the "
                "server's key (PowerDNS: pdnsutil import-tsig-key and the zone's "
                "TSIG-ALLOW-AXFR / TSIG-ALLOW-DNSUPDATE metadata)")

    def _key_refused(self, operation: str, answer: str) -> _KeyRefused:
        return _KeyRefused(self._key_problem(operation, answer), answer)

    def _tsig_error(self, exc: Exception) -> DnsRejected:
        """A TSIG error in the server's answer, worded; BADSIG and BADKEY as refusals of
        the key (its secret file is worth reading again)."""
        if isinstance(exc, dns.tsig.PeerBadSignature):
            return _KeyRefused(self._tsig_message(exc), "BADSIG")
        if isinstance(exc, dns.tsig.PeerBadKey):
            return _KeyRefused(self._tsig_message(exc), "BADKEY")
        return DnsRejected(self._tsig_message(exc))

    def _tsig_message(self, exc: Exception) -> str:
        key = self.keyname.to_text() if self.keyname else "(none)"
        if isinstance(exc, dns.tsig.PeerBadTime | dns.tsig.BadTime):
            # TSIG signs the time: the two clocks must agree within the fudge (300 s)
            return (f"{self.where} rejected TSIG key {key} (BADTIME): this host's clock and "
                    "the server's differ by more than 300 s; check that both keep time (NTP)")
        kind = {dns.tsig.PeerBadKey: "BADKEY: unknown key, or key not allowed this "
                                     "operation (Knot: the acl's action)",
                dns.tsig.PeerBadSignature: "BADSIG: the secret does not match"}
        why = next((v for k, v in kind.items() if isinstance(exc, k)), str(exc))
        return f"{self.where} rejected TSIG key {key} ({why}): check provider.tsig"


class _Stream:
    """Where UPDATE messages go: one TCP connection for a whole write (opened on first
    use, opened again once when the server closes it), or UDP per message."""

    def __init__(self, server: str, port: int, timeout: float, tcp: bool,
                 adapter: BindAdapter) -> None:
        self.server, self.port, self.timeout, self.tcp = server, port, timeout, tcp
        self.adapter = adapter
        self.where = f"{server}:{port}"
        self.sock: socket.socket | None = None

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, wire: bytes, msg_id: int, mac: bytes) -> dns.message.Message:
        """Send one message and read its answer. Transport failures are DnsUnavailable:
        the caller sends the message again, and a message applied but unanswered is then
        refused by its own prerequisites, so nothing is applied twice."""
        check_writer(self.adapter.may_write)  # each attempt: a retry may come late
        try:
            if not self.tcp:
                return self._udp(wire, msg_id, mac)
            if self.sock is None:
                self.sock = socket.create_connection((self.server, self.port),
                                                     timeout=self.timeout)
                self.sock.setblocking(False)  # dnspython waits with its own deadline
            expiration = time.time() + self.timeout
            dns.query.send_tcp(self.sock, wire, expiration)
            response, _ = dns.query.receive_tcp(self.sock, expiration,
                                                keyring=self.adapter.keyring, request_mac=mac)
            return self._matched(response, msg_id)
        except (dns.tsig.PeerError, dns.tsig.BadTime) as exc:
            raise self.adapter._tsig_error(exc) from None
        except dns.message.UnknownTSIGKey:
            raise DnsRejected(f"{self.where} answered with a TSIG key we do not know") from None
        except dns.exception.FormError as exc:
            self._close()
            if "requires a TSIG" in str(exc):  # PowerDNS: REFUSED, unsigned, to a bad key
                raise self.adapter._key_refused("update", "an unsigned answer") from None
            raise DnsUnavailable(f"bad answer from {self.where}: {exc}") from None
        except (dns.exception.Timeout, TimeoutError):
            self._close()
            raise DnsUnavailable(f"no answer from {self.where} within {self.timeout:g} s") from None
        except (OSError, EOFError) as exc:
            self._close()  # the next attempt opens a new connection
            why = getattr(exc, "strerror", None) or str(exc) or "connection closed"
            raise DnsUnavailable(f"cannot reach {self.where}: {why}") from None
        except dns.exception.DNSException as exc:
            self._close()
            raise DnsUnavailable(f"bad answer from {self.where}: {exc}") from None

    def _udp(self, wire: bytes, msg_id: int, mac: bytes) -> dns.message.Message:
        # connected: a stopped server refuses at once rather than at the timeout
        with connected_udp(self.server, self.port) as sock:
            expiration = time.time() + self.timeout
            dns.query.send_udp(sock, wire, (self.server, self.port), expiration)
            response, _ = dns.query.receive_udp(sock, (self.server, self.port), expiration,
                                                keyring=self.adapter.keyring, request_mac=mac)
        if response.flags & dns.flags.TC:
            self.tcp = True
            return self.exchange(wire, msg_id, mac)
        return self._matched(response, msg_id)

    def _matched(self, response: dns.message.Message, msg_id: int) -> dns.message.Message:
        if response.id != msg_id:
            self._close()
            raise DnsUnavailable(f"{self.where} answered another message (id {response.id})")
        if response.rcode() == dns.rcode.SERVFAIL:
            raise DnsServerFailed(f"{self.where} answered SERVFAIL")
        return response


class _Refused(DnsRejected):
    """An UPDATE answered REFUSED: a policy on the key, or on a record in it."""

    def __init__(self, message: str, rcode: str) -> None:
        super().__init__(message)
        self.rcode = rcode


class _KeyRefused(DnsRejected):
    """The server refused the TSIG key (BADSIG, BADKEY; PowerDNS: NOTAUTH or an unsigned
    answer): a secret rotated in its file is worth reading again."""

    def __init__(self, message: str, answer: str) -> None:
        super().__init__(message)
        self.answer = answer


class _TransferRefused(DnsRejected):
    """AXFR refused by policy: the caller falls back to queries."""


def _rdataset(rs: RecordSet) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text("IN", rs.type, 0, *rs.values)
