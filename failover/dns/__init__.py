"""DNS adapters: read the actual records, apply a ChangeSet, confirm what is served.

Adapters only translate the neutral RecordSet model; they hold no policy logic.
Heavy libraries load only here, and only when an adapter is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter


def make_adapter(cfg: Config) -> Adapter | None:
    """The adapter for the config's provider (one per zone, behind a ZonedAdapter, when
    the config has several zones); None for provider none.

    Raises SecretError when a provider's secret cannot be resolved.
    """
    if cfg.zones is None:
        return _adapter(cfg, cfg.zone, cfg.provider, "provider")
    from failover.dns.zones import ZonedAdapter

    adapters = {}
    for i, spec in enumerate(cfg.zone_specs):
        adapter = _adapter(cfg, spec.zone, spec.provider, f"zones[{i}].provider")
        if adapter is not None:
            adapters[spec.zone] = adapter
    if not adapters:
        return None
    return ZonedAdapter(adapters, cfg.zone_of)


def leaves(adapter: Any) -> list[Any]:
    """Every adapter under `adapter` that writes one zone on one server (one per zone of
    several, one per view of a zone served from views): where fences live."""
    subs = getattr(adapter, "adapters", None)
    if subs is None:
        return [adapter]
    return [leaf for a in subs.values() for leaf in leaves(a)]


def _adapter(cfg: Config, zone: str, prov: Any, where: str) -> Adapter | None:
    from failover.config import BindProvider, Route53Provider, ZonefileProvider

    if isinstance(prov, BindProvider) and prov.views and cfg.networks:
        from failover.dns.signing import signing_key
        from failover.dns.views import ViewsAdapter, view_provider

        return ViewsAdapter(zone, prov, {
            net: signing_key(cfg, view_provider(prov, net), f"{where}.views.{net}")
            for net in prov.views})
    if isinstance(prov, BindProvider):
        from failover.dns.bind import BindAdapter
        from failover.dns.signing import signing_key

        return BindAdapter(zone, prov, signing_key(cfg, prov, where))
    if isinstance(prov, ZonefileProvider):
        from failover.dns.zonefile import ZonefileAdapter

        return ZonefileAdapter(zone, prov, cfg.path(prov.path))
    if isinstance(prov, Route53Provider):
        from failover.dns.route53 import Route53Adapter

        return Route53Adapter(zone, prov, cfg=cfg)
    return None  # provider none
