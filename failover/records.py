"""The neutral record model every stage speaks: policies produce it, adapters translate it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

RecordType = Literal["A", "AAAA", "CNAME"]
RECORD_TYPES: tuple[RecordType, ...] = ("A", "AAAA", "CNAME")
FailoverRole = Literal["PRIMARY", "SECONDARY"]


def absolute_name(name: str) -> str:
    """Lower-case a DNS name and give it a trailing dot (Route 53 treats names as absolute)."""
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def canonical_value(rtype: str, value: str) -> str:
    """The one spelling of a record value, so desired and actual compare equal.

    Raises ValueError when the value does not fit the type.
    """
    if rtype == "A":
        return str(ipaddress.IPv4Address(value.strip()))
    if rtype == "AAAA":
        return str(ipaddress.IPv6Address(value.strip()))
    if rtype == "CNAME":
        return absolute_name(value)
    return value


@dataclass(frozen=True)
class RecordSet:
    """One resource record set: a name, a type, a TTL, values and routing attributes.

    `values` is sorted and canonical (see `RecordSet.make`). The routing attributes are
    what a provider may express natively (Route 53); a resolved answer leaves them None.
    """

    name: str
    type: str
    set_identifier: str | None = None
    ttl: int = 60
    values: tuple[str, ...] = ()
    weight: int | None = None
    region: str | None = None
    failover: FailoverRole | None = None
    health_check_id: str | None = None
    # Route 53 geolocation: (("ContinentCode", "EU"),), (("CountryCode", "*"),) for default
    geo: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def make(cls, name: str, type: str, ttl: int, values: Any, **routing: Any) -> RecordSet:
        """Build a record set with its name and values in canonical form."""
        canon = tuple(sorted({canonical_value(type, str(v)) for v in values}))
        return cls(name=absolute_name(name), type=type, ttl=int(ttl), values=canon, **routing)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """What identifies the record set in a zone: name, type, set identifier."""
        return (self.name, self.type, self.set_identifier)

    @property
    def sort_key(self) -> tuple[str, str, str]:
        """Zone order: by name, type, then set identifier (none first)."""
        return (self.name, self.type, self.set_identifier or "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; routing attributes appear only when set."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "ttl": self.ttl,
                               "values": list(self.values)}
        for attr in ("set_identifier", "weight", "region", "failover", "health_check_id"):
            val = getattr(self, attr)
            if val is not None:
                out[attr] = val
        if self.geo is not None:
            out["geo"] = dict(self.geo)
        return out
