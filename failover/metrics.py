"""The controller's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# no `_created` series: they double the exposition and no dashboard or alert reads them
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric the controller exports on /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.probes = Counter("failover_probes", "Probe results.", ["endpoint", "check", "result"],
                              registry=r)
        self.probe_latency = Gauge("failover_probe_latency_seconds",
                                   "Latest probe latency (connect + first byte).",
                                   ["endpoint", "check"], registry=r)
        self.endpoint_healthy = Gauge("failover_endpoint_healthy", "1 when healthy.",
                                      ["region", "endpoint"], registry=r)
        self.region_healthy = Gauge("failover_region_healthy",
                                    "1 when any endpoint of the region is healthy.", ["region"],
                                    registry=r)
        self.dns_changes = Counter("failover_dns_changes", "Record sets written.", ["action"],
                                   registry=r)
        self.dns_errors = Counter("failover_dns_errors", "Failed DNS reads and writes.", ["kind"],
                                  registry=r)
        self.reconcile = Histogram("failover_reconcile_seconds", "Duration of a reconcile tick.",
                                   registry=r, buckets=(.001, .005, .01, .025, .05, .1, .25, .5,
                                                        1, 2.5, 5))
        self.health_to_served = Histogram(
            "failover_health_to_served_seconds",
            "From an endpoint's status change to the new answer being served.", registry=r,
            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.overrides = Gauge("failover_overrides_active", "Active operator overrides.",
                               ["kind"], registry=r)
        self.ready = Gauge("failover_ready", "1 once the first full probe round is done.",
                           registry=r)
        self.answer_changes = Counter("failover_answer_changes",
                                      "Records whose decided answer changed (failovers, "
                                      "failbacks, drains, pins).", registry=r)
        self.unserved = Gauge("failover_names_unserved",
                              "Names whose decided answer is not yet written to DNS.",
                              registry=r)
        self.dns_write = Histogram("failover_dns_write_seconds",
                                   "From sending a write to the server acknowledging it.",
                                   registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1,
                                                        2.5, 5, 10))
        self.override_started = Gauge("failover_override_started_timestamp_seconds",
                                      "When each active override was set (epoch seconds).",
                                      ["kind", "target"], registry=r)
        self.state_errors = Counter("failover_state_errors",
                                    "Failed reads and writes of the state store.", ["op"],
                                    registry=r)
        self.state_ok = Gauge("failover_state_ok",
                              "1 when the last write of the state store succeeded.",
                              registry=r)
        self.state_ok.set(1)
        self.not_written = Gauge("failover_names_not_written",
                                 "Managed names the controller may not or cannot write.",
                                 ["reason"], registry=r)
        self.degraded = Gauge("failover_degraded",
                              "1 while /readyz reports the controller degraded.", registry=r)
        self.reloads = Counter("failover_config_reloads",
                               "Config reloads performed (SIGHUP; a burst of signals is "
                               "coalesced into few), by result: applied or refused.",
                               ["result"], registry=r)
        self.schedule_lag = Gauge("failover_probe_schedule_lag_p99_seconds",
                                  "p99 of the probe schedule lag.", registry=r)
        # a fleet (controller.cluster); 0 in one process
        self.fleet_leader = Gauge("failover_fleet_leader",
                                  "1 while this instance leads the fleet (writes DNS).",
                                  registry=r)
        self.fleet_epoch = Gauge("failover_fleet_epoch",
                                 "The fencing epoch of the fleet's leader, as this instance "
                                 "sees it (0: no leader).", registry=r)
        self.fleet_vantages = Gauge("failover_fleet_vantages",
                                    "Vantages whose views count, this one included.",
                                    registry=r)
        # networks x regions: bounded by the config, not by the zone
        self.network_answers = Gauge("failover_network_answers",
                                     "Records whose answer for a client network comes from "
                                     "a region (networks: only).", ["network", "region"],
                                     registry=r)

        # notifications (notify:): by sink, bounded by the config
        self.notify_sent = Counter("failover_notify_sent",
                                   "Notification messages delivered, by sink.", ["sink"],
                                   registry=r)
        self.notify_failed = Counter("failover_notify_failed",
                                     "Notification messages given up after their retries "
                                     "(or not sendable), by sink.", ["sink"], registry=r)
        self.notify_dropped = Counter("failover_notify_dropped",
                                      "Notices dropped because a sink's waiting batch was "
                                      "full, by sink.", ["sink"], registry=r)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
