"""What a valid config does that its author may not expect: warnings for validate and plan.

- Weighted records with unequal weights on a server that cannot weight (RFC 2136
  servers, zone files) or in a Route 53 zone with networks (one geolocation record set
  per network): one RRset holds every answering address and resolvers rotate it
  evenly, so the weights are not what clients get.
- Records with `fail_mode: closed`: while every region is out the name has no answer,
  and caching resolvers keep that empty answer for the zone's negative TTL (the smaller
  of its SOA TTL and SOA MINIMUM) after a region recovers, however fast the controller
  writes the name again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from policies.served import GEO_ONE_ANSWER, provider_type, weighing_note

if TYPE_CHECKING:
    from failover.config import Config, Record
    from failover.dns.negative import NegativeTtl

LISTED = 5  # names shown per warning; the rest are counted


def weight_warnings(cfg: Config) -> list[str]:
    """One warning per zone that cannot weight (its provider, or Route 53 with networks)
    and that has weighted records with unequal non-zero weights."""
    by_zone: dict[str, list[Record]] = {}
    for rec in cfg.records:
        heavy = {w for w in (rec.weights or {}).values() if w > 0}
        if rec.policy == "weighted" and len(heavy) > 1 and weighing_note(cfg, rec.name):
            by_zone.setdefault(cfg.zone_of(rec.name) or cfg.zone, []).append(rec)
    out = []
    for zone, records in by_zone.items():
        weights = ", ".join(f"{r} {w}" for r, w in (records[0].weights or {}).items())
        note = weighing_note(cfg, records[0].name)
        if note == GEO_ONE_ANSWER:
            out.append(
                f"weights not served for {_names(records)} (zone {zone}, provider route53 "
                f"with networks): equal shares: {note}. Each network's answer is one "
                "geolocation record set with every answering region's addresses and "
                f"resolvers rotate them evenly, so weights such as {weights} give each "
                "address an equal share (status shows the shares served); without "
                "networks Route 53 weighs natively")
            continue
        out.append(
            f"weights not served for {_names(records)} (zone {zone}, provider "
            f"{provider_type(cfg, records[0].name)}): equal shares: {note}. It "
            "holds one answer with every answering region's addresses and resolvers rotate "
            f"them evenly, so weights such as {weights} give each address an equal share "
            "(status shows the shares served); provider route53 weighs natively"
            + (" (without networks)" if cfg.networks else ""))
    return out


def closed_warnings(cfg: Config,
                    negative: Mapping[str, NegativeTtl | str] | None = None) -> list[str]:
    """One warning per zone with records whose fail mode is closed. `negative` holds each
    zone's negative TTL as read from DNS, or why it could not be read; a zone not in it
    is described without the figure."""
    by_zone: dict[str, list[Record]] = {}
    for rec in cfg.records:
        if rec.fail_mode == "closed":
            by_zone.setdefault(cfg.zone_of(rec.name) or cfg.zone, []).append(rec)
    out = []
    for zone, records in by_zone.items():
        known = (negative or {}).get(zone)
        if known is None or isinstance(known, str):
            figure = ("its SOA MINIMUM, or the SOA's TTL when lower: often 1 h to 1 day; "
                      + (f"not read: {known}" if known else "`failover plan` reads it"))
            wait = "that long"
        else:
            figure = (f"{known.seconds} s: the smaller of its SOA MINIMUM {known.minimum} s "
                      f"and SOA TTL {known.soa_ttl} s")
            wait = f"up to {known.seconds} s"
        out.append(
            f"fail_mode closed: {_names(records)} (zone {zone}) "
            f"{'gets' if len(records) == 1 else 'get'} no answer while every region is "
            "out; caching resolvers keep that empty answer for the zone's negative TTL "
            f"({figure}), so clients behind them stay without an answer {wait} after a "
            "region recovers, though the server answers again within seconds (fail_mode "
            "open or last_known_good never empties a name)")
    return out


def _names(records: list[Record]) -> str:
    shown = ", ".join(f"{r.name} {r.type}" for r in records[:LISTED])
    more = len(records) - LISTED
    return shown + (f" and {more} more" if more > 0 else "")
