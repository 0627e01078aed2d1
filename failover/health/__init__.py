"""Health: pure state that turns probe results into a HealthSnapshot. No I/O, no clock."""

from failover.health.board import HealthBoard, Transition, initial_snapshot
from failover.health.snapshot import EndpointHealth, HealthSnapshot, assume_regions, endpoint_id
from failover.health.tracker import CheckState, Outcome, observe, vantage_healthy

__all__ = ["CheckState", "EndpointHealth", "HealthBoard", "HealthSnapshot", "Outcome",
           "Transition", "assume_regions", "endpoint_id", "initial_snapshot", "observe",
           "vantage_healthy"]
