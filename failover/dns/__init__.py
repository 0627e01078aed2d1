"""DNS adapters: read the actual records, apply a ChangeSet, confirm what is served.

Adapters only translate the neutral RecordSet model; they hold no policy logic.
Heavy libraries load only here, and only when an adapter is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter


def make_adapter(cfg: Config) -> Adapter | None:
    """The adapter for the config's provider; None for provider none.

    Raises SecretError when the provider's secret cannot be resolved.
    """
    from failover.config import BindProvider, Route53Provider, ZonefileProvider

    prov = cfg.provider
    if isinstance(prov, BindProvider):
        from failover.dns.bind import BindAdapter

        return BindAdapter(cfg.zone, prov, cfg.tsig_secret())
    if isinstance(prov, ZonefileProvider):
        from failover.dns.zonefile import ZonefileAdapter

        return ZonefileAdapter(cfg.zone, prov, cfg.path(prov.path))
    if isinstance(prov, Route53Provider):
        from failover.dns.route53 import Route53Adapter

        return Route53Adapter(cfg.zone, prov, cfg=cfg)
    return None  # provider none
