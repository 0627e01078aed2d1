"""Client networks: who gets which answer, and how each provider tells clients apart.

`networks:` names the client networks (their resolvers' address ranges, the fleet
vantage that measures latency for them, their Route 53 location); `default` takes every
client in no other network. A record answers each network by its own settings
(`records[].networks`) or the record's. BIND serves each network from a view chosen by
TSIG key (`provider.views`); Route 53 from geolocation records; a server without views
(Knot, PowerDNS) or a zone file cannot tell clients apart, and `validate` says so.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from failover.config.fields import Model, Weight

if TYPE_CHECKING:
    from failover.config.models import Config, Record

DEFAULT_NETWORK = "default"
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
Cidr = ipaddress.IPv4Network | ipaddress.IPv6Network
Tier = str | list[str]
Issue = tuple[tuple[str | int, ...], str]


class Route53Location(Model):
    """Where a network's clients are for Route 53 geolocation records: a continent, or a
    country (two letters, ISO 3166), optionally with a subdivision (US states)."""

    continent: Literal[CONTINENTS] | None = None  # type: ignore[valid-type]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    subdivision: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,3}$")] | None = None

    def as_route53(self) -> dict[str, str]:
        """The GeoLocation of a Route 53 record set."""
        out = {}
        if self.continent:
            out["ContinentCode"] = self.continent
        if self.country:
            out["CountryCode"] = self.country
        if self.subdivision:
            out["SubdivisionCode"] = self.subdivision
        return out


class Network(Model):
    """A named client network: its resolvers' addresses, the vantage that measures
    latency for it, and its Route 53 location."""

    cidrs: list[Cidr] = Field(default_factory=list)  # the resolvers/clients of this network
    vantage: str | None = None  # the fleet vantage whose latencies answer it (latency policy)
    route53: Route53Location | None = None  # Route 53: the geolocation of its record set


class RecordNetwork(Model):
    """A record's own settings for one network (unset: the record's)."""

    order: list[Tier] | None = None  # failover: this network's tiers
    weights: dict[str, Weight] | None = None  # weighted: this network's weights
    regions: list[str] | None = None  # latency: the regions this network may be sent to


def network_checks(cfg: Config) -> Iterator[Issue]:
    """Every problem of `networks:`, of records' per-network settings and of providers
    that cannot express networks, as (field path, message)."""
    records_with = [(i, r) for i, r in enumerate(cfg.records) if r.networks]
    if not cfg.networks:
        for i, _ in records_with:
            yield (("records", i, "networks"), "the record has per-network settings but the "
                   "config defines no networks: add networks: (with default)")
        yield from _views_without_networks(cfg)
        return
    for name in cfg.networks:
        if not NETWORK_NAME.match(name):
            yield (("networks", name), f"network name '{name}' must be letters, digits, '_' "
                   "or '-' (at most 63)")
    if DEFAULT_NETWORK not in cfg.networks:
        yield (("networks",), "a 'default' network is required: it answers every client in "
               "no other network (default: {})")
    yield from _overlaps(cfg)
    fleet = cfg.controller.cluster
    for name, net in cfg.networks.items():
        at: tuple[str | int, ...] = ("networks", name)
        if name == DEFAULT_NETWORK and net.cidrs:
            yield ((*at, "cidrs"), "the default network takes every client in no other "
                   "network: it has no cidrs")
        if net.vantage is not None and fleet is not None and fleet.vantages is not None \
                and net.vantage not in fleet.vantages:
            yield ((*at, "vantage"), f"vantage '{net.vantage}' is not one of the fleet's "
                   f"(controller.cluster.vantages: {', '.join(fleet.vantages)})")
        if net.route53 is not None:
            loc = net.route53
            if bool(loc.continent) == bool(loc.country):
                yield ((*at, "route53"), "give a continent or a country (not both)")
            elif loc.subdivision and not loc.country:
                yield ((*at, "route53", "subdivision"), "a subdivision needs its country")
    for i, rec in records_with:
        yield from _record_networks(cfg, i, rec)
    yield from _provider_networks(cfg)


def _views_without_networks(cfg: Config) -> Iterator[Issue]:
    from failover.config.settings import BindProvider

    for at, prov in _providers(cfg):
        if isinstance(prov, BindProvider) and prov.views:
            yield ((*at, "views"), "views answer client networks, and the config defines "
                   "none: add networks: (with default), or remove views")


def _providers(cfg: Config) -> list[tuple[tuple[str | int, ...], object]]:
    if cfg.zones:
        return [(("zones", i, "provider"), z.provider) for i, z in enumerate(cfg.zones)]
    return [(("provider",), cfg.provider)]


def _overlaps(cfg: Config) -> Iterator[Issue]:
    seen: list[tuple[Cidr, str, int]] = []
    for name, net in cfg.networks.items():
        for j, cidr in enumerate(net.cidrs):
            for other, oname, k in seen:
                if cidr.version == other.version and cidr.overlaps(other):
                    where = "this network" if oname == name else f"network {oname}"
                    yield (("networks", name, "cidrs", j), f"{cidr} overlaps {other} of "
                           f"{where} (cidrs[{k}]): a client must belong to one network")
            seen.append((cidr, name, j))


def _record_networks(cfg: Config, i: int, rec: Record) -> Iterator[Issue]:
    own = set(cfg.record_regions(rec))
    fields = {"failover": "order", "weighted": "weights", "latency": "regions"}[rec.policy]
    for net, spec in (rec.networks or {}).items():
        at: tuple[str | int, ...] = ("records", i, "networks", net)
        if net not in cfg.networks:
            yield (at, f"unknown network '{net}' (networks: {', '.join(cfg.networks)})")
            continue
        for f in ("order", "weights", "regions"):
            if f != fields and f in spec.model_fields_set:
                yield ((*at, f), f"'{f}' does not apply to policy {rec.policy} (use {fields})")
        names: list[tuple[tuple[str | int, ...], str]] = []
        if spec.order is not None:
            if not spec.order:
                yield ((*at, "order"), "order is empty: list at least one region")
            for j, tier in enumerate(spec.order):
                tiers = tier if isinstance(tier, list) else [tier]
                names += [((*at, "order", j), r) for r in tiers]
        names += [((*at, "weights", r), r) for r in spec.weights or {}]
        names += [((*at, "regions", j), r) for j, r in enumerate(spec.regions or [])]
        seen: set[str] = set()
        for path, region in names:
            if region not in own:
                yield (path, f"region '{region}' is not a region of {rec.name} (its "
                       f"regions: {', '.join(sorted(own))})")
            elif region in seen:
                yield (path, f"region '{region}' appears twice in this network's settings")
            seen.add(region)
        if spec.weights is not None and not any(w > 0 for w in spec.weights.values()):
            yield ((*at, "weights"), "every weight is 0: give one region a weight")


def _provider_networks(cfg: Config) -> Iterator[Issue]:
    from failover.config.settings import BindProvider, Route53Provider, ZonefileProvider

    for at, prov in _providers(cfg):
        if isinstance(prov, ZonefileProvider):
            yield ((*at, "type"), "provider zonefile cannot answer per client network: one "
                   "file holds one answer per name; use rfc2136 with BIND views, or route53 "
                   "(docs/routing.md, Networks)")
        elif isinstance(prov, BindProvider):
            if not prov.views:
                yield ((*at, "views"), f"networks need one view per network on the server "
                       f"({prov.server}): give provider.views with a TSIG key per network "
                       "(BIND's views, docs/providers.md). Servers without views (Knot, "
                       "PowerDNS) cannot answer per client network")
                continue
            for net in cfg.networks:
                if net not in prov.views:
                    yield ((*at, "views"), f"no view key for network '{net}': each network "
                           "is read and written through its own view, chosen by its key")
            for net, view in prov.views.items():
                if net not in cfg.networks:
                    yield ((*at, "views", net), f"unknown network '{net}' (networks: "
                           f"{', '.join(cfg.networks)})")
                key = view.tsig
                if bool(key.secret_env) == bool(key.secret_file):
                    yield ((*at, "views", net, "tsig"), "give exactly one of secret_env or "
                           "secret_file")
            names = [v.tsig.name for v in prov.views.values()]
            for net, view in prov.views.items():
                if names.count(view.tsig.name) > 1:
                    yield ((*at, "views", net, "tsig", "name"), f"key {view.tsig.name} "
                           "serves several views: each view needs its own key (the key "
                           "chooses the view)")
                    break
        elif isinstance(prov, Route53Provider):
            for net, spec in cfg.networks.items():
                if net != DEFAULT_NETWORK and spec.route53 is None:
                    yield (("networks", net, "route53"), "Route 53 answers a network by "
                           "its location: give route53: {continent: EU}, {country: DE} or "
                           "{country: US, subdivision: CA}")


def _local_vantage(cfg: Config) -> str | None:
    c = cfg.controller
    if c.cluster is not None:
        return c.cluster.vantage_name()
    return c.vantage


def network_notes(cfg: Config) -> list[str]:
    """What a valid `networks:` does that its author may not expect (validate, plan)."""
    if not cfg.networks:
        return []
    from failover.config.settings import Route53Provider

    out = []
    if any(isinstance(p, Route53Provider) for _, p in _providers(cfg)):
        given = [n for n, s in cfg.networks.items() if s.cidrs]
        if given:
            out.append(f"networks {', '.join(given)}: cidrs are not used by Route 53, which "
                       "tells clients apart by geolocation (networks[].route53)")
    if any(r.policy == "latency" for r in cfg.records):
        local = _local_vantage(cfg)
        if cfg.controller.cluster is None:
            other = [n + (f" (vantage {s.vantage})" if s.vantage else " (no vantage)")
                     for n, s in cfg.networks.items() if s.vantage is None or s.vantage != local]
            if other:
                out.append(f"no fleet: latency records answer networks {', '.join(other)} by "
                           "this controller's latency"
                           + (f" (controller.vantage {local})" if local else
                              " (set controller.vantage to name where it runs)"))
        else:
            none = [n for n, s in cfg.networks.items() if s.vantage is None]
            if none:
                out.append(f"latency records answer networks {', '.join(none)} by the "
                           "fleet's latency (no vantage of their own)")
    return out

