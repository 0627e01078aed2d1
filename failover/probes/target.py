"""What to probe for each endpoint: the config's templates resolved into flat targets."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.config import CheckTemplate, Config, Endpoint

BODY_LIMIT = 5120  # Route 53 searches the first 5,120 bytes of the body


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One (endpoint, leaf check) pair to probe on its own interval.

    `ip` is the address connected to; when None, `fqdn` is resolved before each probe.
    `host` is the HTTP Host header; `sni` the TLS server name (None: no SNI).
    """

    key: str
    endpoint: str
    check: str
    type: str
    ip: str | None
    fqdn: str | None
    port: int
    path: str
    host: str
    sni: str | None
    search: bytes | None
    tls: bool
    verify_tls: bool
    interval: float
    connect_timeout: float
    response_timeout: float
    body_timeout: float
    ca_file: str | None = None  # absolute: the CAs trusted besides the system's
    source: str | None = None  # the local address probes connect from (None: the system's)

    @property
    def where(self) -> str:
        """`127.0.1.1:8080` or `[::1]:443` or `name:443`, for messages."""
        host = self.ip or self.fqdn or "?"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def leaf_checks(cfg: Config, name: str) -> list[str]:
    """The non-CALCULATED templates a check name stands for (itself, or its children)."""
    out: list[str] = []
    stack = [name]
    while stack:
        cur = stack.pop()
        tmpl = cfg.checks[cur]
        if tmpl.type == "CALCULATED":
            stack.extend(reversed(tmpl.child_checks or []))
        elif cur not in out:
            out.append(cur)
    return out


def make_target(eid: str, ep: Endpoint, check_name: str, tmpl: CheckTemplate,
                ca_file: str | None = None) -> ProbeTarget:
    """Resolve what to probe for one endpoint under one leaf template."""
    ip = str(ep.ip) if ep.ip is not None else None
    if ip is None and ep.kind != "CNAME":
        ip = ep.address
    fqdn = ep.fqdn or tmpl.fqdn or (ep.address.rstrip(".") if ep.kind == "CNAME" else None)
    port = ep.port or tmpl.effective_port
    assert port is not None  # validation guarantees a port for TCP checks
    # Route 53: Host is the FQDN (else the IP), with :port unless the port is 80 or 443.
    host_name = fqdn or (f"[{ip}]" if ip and ipaddress.ip_address(ip).version == 6 else ip or "")
    host = host_name if port in (80, 443) else f"{host_name}:{port}"
    tls = tmpl.type in ("HTTPS", "HTTPS_STR_MATCH")
    return ProbeTarget(
        key=f"{eid}#{check_name}", endpoint=eid, check=check_name, type=tmpl.type, ip=ip,
        fqdn=fqdn, port=port, path=tmpl.resource_path or "/", host=host,
        sni=fqdn if (tls and tmpl.enable_sni) else None,
        search=tmpl.search_string.encode() if tmpl.search_string else None, tls=tls,
        verify_tls=tmpl.verify_tls, interval=tmpl.request_interval,
        connect_timeout=tmpl.effective_connect_timeout, response_timeout=tmpl.response_timeout,
        body_timeout=tmpl.body_timeout, ca_file=ca_file)


def targets_for(cfg: Config) -> list[ProbeTarget]:
    """Every probe target of a config: one per endpoint and leaf check it uses."""
    targets = []
    for _, _, eid, ep in cfg.all_endpoints():
        if ep.check is None:
            continue
        for leaf in leaf_checks(cfg, ep.check):
            tmpl = cfg.checks[leaf]
            if not tmpl.disabled:
                targets.append(make_target(eid, ep, leaf, tmpl, str(cfg.path(tmpl.ca_file))
                                           if tmpl.ca_file else None))
    source = cfg.controller.probe_source
    if source is not None:  # probes of the source's family leave from it
        targets = [dataclasses.replace(t, source=str(source)) if t.ip is not None and (
            ipaddress.ip_address(t.ip).version == source.version) else t for t in targets]
    return targets
