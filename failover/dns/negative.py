"""A zone's negative TTL: how long resolvers keep "no such answer" (RFC 2308).

A resolver caches an empty answer (NXDOMAIN or NODATA) for the smaller of the zone's SOA
TTL and its SOA MINIMUM field. A name a controller emptied (fail mode closed) stays
empty that long behind every caching resolver after it is written again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.message
import dns.rdatatype

from failover.config import BindProvider, Route53Provider, ZonefileProvider
from failover.dns.base import DnsError
from failover.dns.served import ask

if TYPE_CHECKING:
    from failover.config import ZoneSpec
    from failover.dns.base import Adapter


@dataclass(frozen=True)
class NegativeTtl:
    """The zone's SOA TTL and MINIMUM, and what resolvers cache an empty answer for."""

    soa_ttl: int
    minimum: int

    @property
    def seconds(self) -> int:
        """How long a resolver keeps an empty answer: min(SOA TTL, SOA MINIMUM)."""
        return min(self.soa_ttl, self.minimum)


def read_negative_ttl(spec: ZoneSpec, adapter: Adapter | None) -> NegativeTtl | None:
    """The zone's negative TTL as its provider serves it; None for provider none.

    RFC 2136 servers and zone files: a SOA query to the configured server. Route 53: the
    hosted zone's SOA record through the API (`adapter` must be the zone's, or a
    ZonedAdapter holding it). Raises DnsError when the server does not answer or has no
    SOA for the zone.
    """
    prov = spec.provider
    if isinstance(prov, BindProvider | ZonefileProvider):
        transport_tcp = isinstance(prov, BindProvider) and prov.transport == "tcp"
        response = ask(str(prov.server), prov.port, dns.message.make_query(spec.zone, "SOA"),
                       prov.timeout, tcp=transport_tcp)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return NegativeTtl(int(rrset.ttl), int(rrset[0].minimum))
        raise DnsError(f"{prov.server}:{prov.port} has no SOA for {spec.zone}")
    if isinstance(prov, Route53Provider):
        zone_adapter: Any = getattr(adapter, "adapters", {}).get(spec.zone, adapter)
        if zone_adapter is None or not hasattr(zone_adapter, "call"):
            return None
        page = zone_adapter.call("list_resource_record_sets", HostedZoneId=zone_adapter.zone_id,
                                 StartRecordName=spec.zone, StartRecordType="SOA",
                                 MaxItems="1")
        for item in page.get("ResourceRecordSets", []):
            if item.get("Type") == "SOA" and item.get("ResourceRecords"):
                # MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM: the last number (moto
                # wraps the value in the text of a dict; the last number is still MINIMUM)
                numbers = re.findall(r"\d+", item["ResourceRecords"][0]["Value"])
                if numbers:
                    return NegativeTtl(int(item.get("TTL", 0)), int(numbers[-1]))
        raise DnsError(f"Route 53 holds no SOA for {spec.zone}")
    return None
