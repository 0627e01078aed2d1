"""The health snapshot: what the controller believes about every endpoint at one instant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from failover.health.tracker import Outcome

if TYPE_CHECKING:
    from failover.config import Config, Endpoint


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """One endpoint's status.

    `since` is when the current status began (seconds since the epoch), None when it has
    held since the controller started; `reason` says why, for people
    ("after 3 failures: connect timeout"); `latency_ms` is the smoothed probe latency;
    `recent` the last probe results, newest last.
    """

    healthy: bool
    reason: str
    since: float | None = None
    latency_ms: float | None = None
    recent: tuple[Outcome, ...] = ()


@dataclass(frozen=True)
class HealthSnapshot:
    """Every endpoint's health, keyed by endpoint id (`region/label`), taken at `at`."""

    at: float
    endpoints: Mapping[str, EndpointHealth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", MappingProxyType(dict(self.endpoints)))

    def of(self, region: str, endpoint: Endpoint) -> EndpointHealth:
        """An endpoint's health; an endpoint the snapshot does not know is healthy."""
        return self.by_id(endpoint_id(region, endpoint))

    def by_id(self, eid: str) -> EndpointHealth:
        """An endpoint's health by its id; one the snapshot does not know is healthy."""
        return self.endpoints.get(eid, EndpointHealth(True, "not yet checked"))


def endpoint_id(region: str, endpoint: Endpoint) -> str:
    """The stable id of a region's own endpoint: its region and its name or address
    (a pool's endpoint: region/pool/label, see Config.endpoints_of)."""
    return f"{region}/{endpoint.label}"


def assume_regions(snapshot: HealthSnapshot, cfg: Config, assumed: Mapping[str, bool],
                   now: float) -> HealthSnapshot:
    """A copy of `snapshot` with every endpoint of the given regions forced up or down.

    `assumed` maps region name -> healthy. Used by `plan --assume` to ask "what if".
    """
    endpoints = dict(snapshot.endpoints)
    for rname, healthy in assumed.items():
        for key in [eid for r, _, eid, _ in cfg.all_endpoints() if r == rname]:
            current = endpoints.get(key, EndpointHealth(True, "not yet checked"))
            endpoints[key] = replace(current, healthy=healthy, since=now,
                                     reason=f"assumed {'up' if healthy else 'down'} (--assume)")
    return HealthSnapshot(at=now, endpoints=endpoints)
