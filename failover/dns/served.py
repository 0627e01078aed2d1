"""Asking an authoritative server what it serves: the confirmation step of every adapter."""

from __future__ import annotations

import functools
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Collection
from typing import TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from failover.dns.base import DnsError, DnsRejected, DnsServerFailed, DnsUnavailable
from failover.dns.wire import Signer, parse_answer, query_wire
from failover.plan import ManagedKey
from failover.records import RecordSet

ATTEMPTS = 3
T = TypeVar("T")


def retry(fn: Callable[[], T]) -> T:
    """Call `fn`, retrying DnsUnavailable with exponential backoff (3 attempts, < 1 s)."""
    retrying = Retrying(stop=stop_after_attempt(ATTEMPTS),
                        wait=wait_exponential(multiplier=0.1, max=0.5),
                        retry=retry_if_exception_type(DnsUnavailable), reraise=True)
    return retrying(fn)


def connected_udp(server: str, port: int) -> socket.socket:
    """A non-blocking UDP socket connected to the server: a stopped server's port answers
    "connection refused" at once (ICMP), where an unconnected socket waits its timeout."""
    sock = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET,
                         socket.SOCK_DGRAM)
    try:
        sock.connect((server, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def ask(server: str, port: int, query: dns.message.Message, timeout: float,
        tcp: bool = False) -> dns.message.Message:
    """One exchange over UDP (TCP when truncated, or when `tcp`); failures become
    DnsError subclasses, except TSIG errors (PeerError, BadTime, UnknownTSIGKey), which
    the caller words with the key's name."""
    where = f"{server}:{port}"
    try:
        if tcp:
            response = dns.query.tcp(query, server, port=port, timeout=timeout)
        else:
            with connected_udp(server, port) as sock:
                response, _ = dns.query.udp_with_fallback(query, server, port=port,
                                                          timeout=timeout, udp_sock=sock)
    except (dns.tsig.PeerError, dns.tsig.BadTime, dns.message.UnknownTSIGKey):
        raise
    except (dns.exception.Timeout, TimeoutError):
        raise DnsUnavailable(f"no answer from {where} within {timeout:g} s") from None
    except OSError as exc:
        raise DnsUnavailable(f"cannot reach {where}: {exc.strerror or exc}") from None
    except dns.exception.DNSException as exc:
        raise DnsError(f"bad answer from {where}: {exc}") from None
    if response.rcode() == dns.rcode.SERVFAIL:
        raise DnsServerFailed(f"{where} answered SERVFAIL")
    return response


def served(server: str, port: int, keys: Collection[ManagedKey],
           timeout: float = 2.0, signer: Signer | None = None) -> list[RecordSet]:
    """The record sets the server answers for each (name, type), with retries; with a
    `signer`, every query is signed with its key (a BIND view chosen by key answers)."""
    return retry(functools.partial(served_many, server, port, keys, timeout, signer))


def soa_serial(server: str, port: int, zone: str, timeout: float = 2.0,
               signer: Signer | None = None) -> int | None:
    """The zone's SOA serial as served now; None when the server has no SOA for it."""
    query = dns.message.make_query(zone, "SOA")
    if signer is not None:
        query.use_tsig(signer.keyring, signer.keyname)
    try:
        response = retry(functools.partial(ask, server, port, query, timeout))
    except (dns.tsig.PeerError, dns.tsig.BadTime, dns.message.UnknownTSIGKey) as exc:
        key = signer.keyname if signer is not None else "none"
        raise DnsRejected(f"{server}:{port} refused the TSIG key {key} of a query "
                          f"({exc})") from None
    for rrset in response.answer:
        if dns.rdatatype.to_text(rrset.rdtype) == "SOA":
            return int(rrset[0].serial)
    return None


WINDOW = 64  # queries in flight on one socket: enough to hide the round trip, no flood


def served_many(server: str, port: int, keys: Collection[ManagedKey],
                timeout: float = 2.0, signer: Signer | None = None) -> list[RecordSet]:
    """`served` for many keys: one UDP socket, up to WINDOW queries in flight, each
    retried up to ATTEMPTS times; a truncated answer is asked again over TCP. With a
    `signer` each query is signed (so the view of that key answers); the answer's own
    signature is not checked on the fast path, as an unsigned query's answer is not:
    a confirmation reads what the server serves, the writes it confirms are signed.

    Costs one round trip per WINDOW keys instead of a socket and a round trip per key.
    Raises DnsUnavailable when a key stays unanswered, DnsError on an error rcode.
    """
    todo = sorted(keys)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    out: list[RecordSet] = []
    flight: dict[int, tuple[ManagedKey, float, int]] = {}  # id -> key, sent at, attempt
    macs: dict[int, bytes] = {}  # id -> request MAC (signed queries)
    retry_queue: list[tuple[ManagedKey, int]] = []
    where = f"{server}:{port}"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((server, port))
        except OSError as exc:
            raise DnsUnavailable(f"cannot reach {where}: {exc.strerror or exc}") from None
        nxt = 0

        def send(key: ManagedKey, attempt: int) -> None:
            msg_id = random.randrange(65536)
            while msg_id in flight:
                msg_id = random.randrange(65536)
            flight[msg_id] = (key, time.monotonic(), attempt)
            wire = query_wire(key[0], key[1], msg_id)
            if signer is not None:
                wire, macs[msg_id] = signer.sign(wire, msg_id)
            try:
                sock.send(wire)
            except OSError as exc:
                raise _unreachable(where, exc) from None

        per_try = min(timeout, 1.0)
        while nxt < len(todo) or flight or retry_queue:
            while len(flight) < WINDOW and (retry_queue or nxt < len(todo)):
                if retry_queue:
                    send(*retry_queue.pop())
                else:
                    send(todo[nxt], 1)
                    nxt += 1
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                try:
                    data = sock.recv(65535)
                except OSError as exc:
                    raise _unreachable(where, exc) from None
                if len(data) < 12:
                    continue
                msg_id = int.from_bytes(data[:2], "big")
                entry = flight.pop(msg_id, None)
                if entry is None:
                    continue
                key = entry[0]
                mac = macs.pop(msg_id, b"")
                try:
                    rcode, truncated, rrs = parse_answer(data, key[1])
                except (ValueError, IndexError, struct.error):
                    # dnspython reads the unusual (and checks a signed answer's signature)
                    out.extend(_signed(data, key, where, signer, mac, timeout)
                               if signer is not None else _parsed(data, key, where))
                    continue
                if signer is not None and rcode in (dns.rcode.NOTAUTH, dns.rcode.REFUSED):
                    raise DnsRejected(f"{where} refused a query signed with {signer.keyname}: "
                                      f"{dns.rcode.to_text(dns.rcode.Rcode(rcode))} (the key "
                                      "is wrong, or not one of this view's)")
                if truncated:
                    query = dns.message.make_query(*key)
                    if signer is not None:
                        query.use_tsig(signer.keyring, signer.keyname)
                    response = retry(functools.partial(ask, server, port, query, timeout, True))
                    out.extend(_answer(response, key, where))
                    continue
                _check_rcode(rcode, key, where)
                mine = [(ttl, v) for owner, ttl, v in rrs if owner == key[0]]
                if mine:
                    out.append(RecordSet.make(key[0], key[1], mine[0][0], [v for _, v in mine]))
            now = time.monotonic()
            for msg_id, (key, sent, attempt) in list(flight.items()):
                if now - sent > per_try:
                    del flight[msg_id]
                    if attempt >= ATTEMPTS:
                        raise DnsUnavailable(f"no answer from {where} for {key[0]} {key[1]} "
                                             f"after {ATTEMPTS} tries")
                    retry_queue.append((key, attempt + 1))
    return out


def _signed(data: bytes, key: ManagedKey, where: str, signer: Signer, mac: bytes,
            timeout: float) -> list[RecordSet]:
    """A signed query's answer, its signature checked (over TCP when truncated)."""
    try:
        response = dns.message.from_wire(data, keyring=signer.keyring, request_mac=mac)
    except (dns.tsig.PeerError, dns.tsig.BadTime, dns.message.UnknownTSIGKey) as exc:
        raise DnsRejected(f"{where} refused the TSIG key {signer.keyname} of a query "
                          f"({exc})") from None
    except dns.exception.DNSException as exc:
        raise DnsError(f"bad answer from {where}: {exc}") from None
    if response.flags & dns.flags.TC:
        query = dns.message.make_query(*key)
        query.use_tsig(signer.keyring, signer.keyname)
        host, port = where.rsplit(":", 1)
        response = retry(functools.partial(ask, host.strip("[]"), int(port), query, timeout,
                                           True))
    if response.rcode() == dns.rcode.NOTAUTH or (
            response.rcode() == dns.rcode.REFUSED and response.tsig is None):
        raise DnsRejected(f"{where} refused a query signed with {signer.keyname}: "
                          f"{dns.rcode.to_text(response.rcode())}")
    return _answer(response, key, where)


def _unreachable(where: str, exc: OSError) -> DnsUnavailable:
    if isinstance(exc, ConnectionRefusedError):
        return DnsUnavailable(f"no answer from {where}: nothing listens there (port closed)")
    return DnsUnavailable(f"cannot reach {where}: {exc.strerror or exc}")


def _parsed(data: bytes, key: ManagedKey, where: str) -> list[RecordSet]:
    try:
        response = dns.message.from_wire(data)
    except dns.exception.DNSException as exc:
        raise DnsError(f"bad answer from {where}: {exc}") from None
    return _answer(response, key, where)


def _check_rcode(rcode: int, key: ManagedKey, where: str) -> None:
    if rcode == dns.rcode.SERVFAIL:
        raise DnsServerFailed(f"{where} answered SERVFAIL")
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise DnsError(f"query {key[0]} {key[1]} at {where}: "
                       f"{dns.rcode.to_text(dns.rcode.Rcode(rcode))}")


def _answer(response: dns.message.Message, key: ManagedKey, where: str) -> list[RecordSet]:
    name, rtype = key
    _check_rcode(response.rcode(), key, where)
    return [RecordSet.make(name, rtype, rrset.ttl, [rd.to_text() for rd in rrset])
            for rrset in response.answer
            if rrset.name.to_text().lower() == name and dns.rdatatype.to_text(rrset.rdtype) == rtype]
