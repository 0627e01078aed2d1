"""failover: a multi-region DNS failover controller."""

__version__ = "0.1.0"
