"""Asking an authoritative server what it serves: the confirmation step of every adapter."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from failover.dns.base import DnsError, DnsUnavailable
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
            response, _ = dns.query.udp_with_fallback(query, server, port=port, timeout=timeout)
    except (dns.tsig.PeerError, dns.tsig.BadTime, dns.message.UnknownTSIGKey):
        raise
    except (dns.exception.Timeout, TimeoutError):
        raise DnsUnavailable(f"no answer from {where} within {timeout:g} s") from None
    except OSError as exc:
        raise DnsUnavailable(f"cannot reach {where}: {exc.strerror or exc}") from None
    except dns.exception.DNSException as exc:
        raise DnsError(f"bad answer from {where}: {exc}") from None
    if response.rcode() == dns.rcode.SERVFAIL:
        raise DnsUnavailable(f"{where} answered SERVFAIL")
    return response


def served(server: str, port: int, keys: Collection[ManagedKey],
           timeout: float = 2.0) -> list[RecordSet]:
    """The record sets the server answers for each (name, type), with retries."""
    out = []
    for name, rtype in sorted(keys):
        query = dns.message.make_query(name, rtype)
        response = retry(functools.partial(ask, server, port, query, timeout))
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsError(f"query {name} {rtype} at {server}:{port}: {dns.rcode.to_text(rcode)}")
        for rrset in response.answer:
            if (rrset.name.to_text().lower() == name
                    and dns.rdatatype.to_text(rrset.rdtype) == rtype):
                out.append(RecordSet.make(name, rtype, rrset.ttl, [rd.to_text() for rd in rrset]))
    return out


def soa_serial(server: str, port: int, zone: str, timeout: float = 2.0) -> int | None:
    """The zone's SOA serial as served now; None when the server has no SOA for it."""
    query = dns.message.make_query(zone, "SOA")
    response = retry(functools.partial(ask, server, port, query, timeout))
    for rrset in response.answer:
        if dns.rdatatype.to_text(rrset.rdtype) == "SOA":
            return int(rrset[0].serial)
    return None
