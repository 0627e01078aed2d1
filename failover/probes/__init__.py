"""Probes: async health checks of endpoints (HTTP(S), string match, TCP) and their scheduler.

This is the one place, with the scheduler, that owns a loop. Results go to
`failover.health`, which turns them into status with Route 53's threshold rules.
"""

from failover.probes.result import ProbeResult
from failover.probes.target import ProbeTarget, targets_for

__all__ = ["ProbeResult", "ProbeTarget", "targets_for"]
