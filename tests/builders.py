"""Small builders for configs and snapshots used across tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failover.config import Config
from failover.health import EndpointHealth, HealthSnapshot

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SHARED_CONTRACT = ROOT.parent / "shared" / "contract.yaml"


def config(regions: dict[str, list[str]], records: list[dict[str, Any]],
           **extra: Any) -> Config:
    """A config whose regions have the given endpoint addresses, all checked by 'web'."""
    data: dict[str, Any] = {
        "zone": "example.test.",
        "checks": {"web": {"type": "HTTP", "port": 8080, "request_interval": 1}},
        "regions": {name: {"endpoints": [{"address": a, "check": "web"} for a in addrs]}
                    for name, addrs in regions.items()},
        "records": records,
        **extra,
    }
    return Config.model_validate(data)


def snapshot(cfg: Config, down: dict[str, float] | None = None, now: float = 1000.0,
             latency: dict[str, float] | None = None,
             up_since: dict[str, float] | None = None) -> HealthSnapshot:
    """Every endpoint healthy except those of the regions in `down` (region -> since)."""
    down = down or {}
    latency = latency or {}
    up_since = up_since or {}
    eps = {}
    for rname, region in cfg.regions.items():
        for ep in region.endpoints:
            if rname in down:
                h = EndpointHealth(False, "after 3 failures: connect timeout", since=down[rname])
            else:
                h = EndpointHealth(True, "ok", since=up_since.get(rname),
                                   latency_ms=latency.get(rname))
            eps[f"{rname}/{ep.label}"] = h
    return HealthSnapshot(at=now, endpoints=eps)
