"""Health: pure state that turns probe results into a HealthSnapshot. No I/O, no clock."""

from failover.health.snapshot import (
    EndpointHealth,
    HealthSnapshot,
    assume_regions,
    endpoint_id,
    initial_snapshot,
)

__all__ = ["EndpointHealth", "HealthSnapshot", "assume_regions", "endpoint_id",
           "initial_snapshot"]
