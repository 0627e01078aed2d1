"""The zone's authoritative servers, and what each of them answers.

A failover is done when every server a resolver may ask answers the new way, not only
the one the controller writes to: secondaries learn a change by NOTIFY and zone
transfer and lag behind their primary; Route 53 spreads a change to four name servers.
`failover drill` watches all of them.

The servers come from `drill.servers` when set; otherwise from the zone's NS set as the
provider serves it (Route 53: the hosted zone's delegation set), each name's address
taken from the glue the provider serves or, outside the zone, from the system resolver.

A zone served from BIND views (`provider.views`, one per client network) answers each
network its own way: every server is then asked once per view, each query signed with
that view's key (the key chooses the view), and each answer is watched on its own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.rdatatype
import dns.tsig

from failover.config import BindProvider, Route53Provider, ZonefileProvider, server_address
from failover.dns.base import DnsError
from failover.dns.served import ask, served
from failover.dns.wire import Signer
from failover.errors import FailoverError
from failover.plan import ManagedKey

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter

Answers = dict[ManagedKey, frozenset[str]]


@dataclass(frozen=True)
class Server:
    """One authoritative server: where to ask, the NS name it was found by, and with
    views, the view asked (a client network) with the key that chooses it."""

    address: str
    port: int
    name: str | None = None
    view: str | None = None
    signer: Signer | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else \
            f"{self.address}:{self.port}"
        about = [a for a in (self.name.rstrip(".") if self.name else None, self.view) if a]
        return f"{where} ({', '.join(about)})" if about else where


def default_port(cfg: Config) -> int:
    """The port of servers given without one: drill.port, else the provider's, else 53."""
    if cfg.drill.port is not None:
        return cfg.drill.port
    if isinstance(cfg.provider, BindProvider | ZonefileProvider):
        return cfg.provider.port
    return 53


def authoritative_servers(cfg: Config, adapter: Adapter | None,
                          configured: Iterable[str] = ()) -> tuple[list[Server], str]:
    """The servers to watch and where they came from (for the report); with views, each
    server once per view (in the order of provider.views).

    Raises FailoverError when none can be found, naming what was tried, and
    SecretError when a view's key cannot be read.
    """
    found, source = _servers(cfg, adapter, configured)
    signers = view_signers(cfg, adapter)
    if signers:
        found = [Server(s.address, s.port, s.name, net, signer)
                 for s in found for net, signer in signers.items()]
    return found, source


def view_signers(cfg: Config, adapter: Adapter | None) -> dict[str, Signer]:
    """Each view's key by client network, to sign the queries that view answers; {}
    when the zone is not served from views. The adapter's keys when it has them, else
    read from the config (raises SecretError when one cannot be read)."""
    prov = cfg.provider
    if not (isinstance(prov, BindProvider) and prov.views and cfg.networks):
        return {}
    views = getattr(adapter, "views", None) or {}
    out: dict[str, Signer] = {}
    secrets = None
    for net, view in prov.views.items():
        signer = getattr(views.get(net), "query_signer", None)
        if signer is None:
            secrets = secrets or cfg.view_secrets(prov)
            name = dns.name.from_text(view.tsig.name)
            signer = Signer(name, dns.tsig.Key(name, secrets[net].get_secret_value(),
                                               dns.name.from_text(view.tsig.algorithm)))
        out[net] = signer
    return out


def _servers(cfg: Config, adapter: Adapter | None,
             configured: Iterable[str]) -> tuple[list[Server], str]:
    port = default_port(cfg)
    chosen = list(configured) or cfg.drill.servers or []
    if chosen:
        found = []
        for value in chosen:
            host, at = server_address(value, port)
            try:
                ipaddress.ip_address(host)
                found.append(Server(host, at))
                continue
            except ValueError:
                pass
            addresses = _resolve(host)  # a host name: each of its addresses is a server
            if not addresses:
                raise FailoverError(f"cannot resolve {host} (from "
                                    f"{'--server' if configured else 'drill.servers'})")
            found += [Server(a, at, host) for a in addresses]
        return _unique(found), "--server" if configured else "drill.servers"
    if isinstance(cfg.provider, Route53Provider):
        names = adapter.name_servers() if adapter is not None and hasattr(
            adapter, "name_servers") else []
        glue: dict[str, list[str]] = {}
        source = "the hosted zone's delegation set"
    elif isinstance(cfg.provider, BindProvider | ZonefileProvider):
        names, glue = _ns_from(str(cfg.provider.server), cfg.provider.port, cfg.zone,
                               cfg.drill.timeout)
        source = f"the NS set of {cfg.zone}"
    else:
        raise FailoverError("no authoritative servers to watch: the provider is none; "
                            "list them in drill.servers")
    found, missing = [], []
    for name in names:
        addresses = glue.get(name) or _resolve(name)
        if not addresses:
            missing.append(name)
        found += [Server(a, port, name) for a in addresses]
    if not found:
        tried = ", ".join(missing) or "no NS records"
        raise FailoverError(f"cannot find the authoritative servers of {cfg.zone} from "
                            f"{source} ({tried} did not resolve): list them in drill.servers")
    return _unique(found), source


def _unique(servers: list[Server]) -> list[Server]:
    seen: dict[tuple[str, int], Server] = {}
    for s in servers:
        seen.setdefault((s.address, s.port), s)
    return list(seen.values())


def _ns_from(server: str, port: int, zone: str,
             timeout: float) -> tuple[list[str], dict[str, list[str]]]:
    """The zone's NS names as `server` serves them, with the glue it has for them."""
    response = ask(server, port, dns.message.make_query(zone, "NS"), timeout)
    names: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.NS and rrset.name.to_text().lower() == zone:
            names += sorted(rd.target.to_text().lower() for rd in rrset)
    glue: dict[str, list[str]] = {}
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(rrset.name.to_text().lower(), []).extend(rd.to_text() for rd in rrset)
    for name in names:  # minimal-responses servers send no additional section
        if name not in glue and name.endswith("." + zone):
            for rtype in ("A", "AAAA"):
                r = ask(server, port, dns.message.make_query(name, rtype), timeout)
                glue.setdefault(name, []).extend(rd.to_text() for rrset in r.answer
                                                 if rrset.rdtype == dns.rdatatype.from_text(rtype)
                                                 for rd in rrset)
    return names, glue


def _resolve(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name.rstrip("."), None, proto=socket.IPPROTO_UDP)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


@dataclass
class Reading:
    """What every server answered for the keys at one moment; `errors` for those that
    did not answer."""

    answers: dict[Server, Answers]
    errors: dict[Server, str]


def read_all(servers: list[Server], keys: Collection[ManagedKey], timeout: float,
             pool: ThreadPoolExecutor) -> Reading:
    """Ask every server for every key, the servers in parallel (a view's queries signed
    with its key)."""

    def one(server: Server) -> Answers | str:
        try:
            out: Answers = {k: frozenset() for k in keys}
            for rs in served(server.address, server.port, keys, timeout, server.signer):
                out[(rs.name, rs.type)] = out[(rs.name, rs.type)] | frozenset(rs.values)
            return out
        except DnsError as exc:
            return str(exc)

    reading = Reading({}, {})
    for server, result in zip(servers, pool.map(one, servers), strict=True):
        if isinstance(result, str):
            reading.errors[server] = result
        else:
            reading.answers[server] = result
    return reading
