"""The controller's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


def _go(value: float) -> str:
    """A sample's value as the exposition writes it (Go's float format)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


# no `_created` series: they double the exposition and no dashboard or alert reads them
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric the controller exports on /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._rest: CollectorRegistry | None = None
        self.probes = ProbeSeries()
        r.register(self.probes)
        self.endpoint_healthy = ManyGauges("failover_endpoint_healthy", "1 when healthy.",
                                           ("region", "endpoint"))
        r.register(self.endpoint_healthy)
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
        rest = self._rest
        if rest is None:
            # every metric but the per-endpoint series, which write their own lines
            rest = CollectorRegistry(auto_describe=False)
            for value in list(vars(self).values()):
                if isinstance(value, MetricWrapperBase):
                    rest.register(value)
            self._rest = rest
        return (generate_latest(rest) + self.endpoint_healthy.text()
                + self.probes.text())


class ProbeSeries(Collector):
    """`failover_probes_total` and `failover_probe_latency_seconds`, per (endpoint, check).

    Kept in plain dicts and turned into series only when /metrics is read: a probe
    result costs a dict update, not a label lookup and a lock per series (at 10,000
    checks a second those were a tenth of the controller's CPU).
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list[int]] = {}  # [ok, fail]
        self.latency: dict[tuple[str, str], float] = {}  # seconds, the latest
        self._labels: dict[tuple[str, str], str] = {}  # the label text of each key

    def text(self) -> bytes:
        """Both families in the exposition format, written here: the label text of a
        series is made once, not at every scrape (10,000 endpoints: 2 MB a scrape)."""
        # the dicts are copied first, in one call: /metrics is rendered on a thread while
        # the loop adds series, and iterating them there could see them change size
        labels = self._labels
        out = ["# HELP failover_probes_total Probe results.\n"
               "# TYPE failover_probes_total counter\n"]
        for key, (ok, fail) in self.counts.copy().items():
            text = labels.get(key) or self._label(key)
            if ok:
                out.append(f'failover_probes_total{{{text},result="ok"}} '
                           f"{_go(ok)}\n")
            if fail:
                out.append(f'failover_probes_total{{{text},result="fail"}} '
                           f"{_go(fail)}\n")
        out.append("# HELP failover_probe_latency_seconds Latest probe latency (connect + "
                   "first byte).\n# TYPE failover_probe_latency_seconds gauge\n")
        for key, seconds in self.latency.copy().items():
            text = labels.get(key) or self._label(key)
            out.append(f"failover_probe_latency_seconds{{{text}}} {_go(seconds)}\n")
        return "".join(out).encode()

    def _label(self, key: tuple[str, str]) -> str:
        endpoint, check = (v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
                           for v in key)
        text = self._labels[key] = f'check="{check}",endpoint="{endpoint}"'
        return text

    def observe(self, endpoint: str, check: str, ok: bool, latency_ms: float | None) -> None:
        """Count one probe result, and keep its latency when it has one."""
        key = (endpoint, check)
        counts = self.counts.get(key)
        if counts is None:
            counts = self.counts[key] = [0, 0]
        counts[not ok] += 1
        if latency_ms is not None:
            self.latency[key] = latency_ms / 1000

    def collect(self) -> Iterator[Metric]:
        probes = CounterMetricFamily("failover_probes", "Probe results.",
                                     labels=["endpoint", "check", "result"])
        for (endpoint, check), (ok, fail) in self.counts.copy().items():
            if ok:
                probes.add_metric([endpoint, check, "ok"], ok)
            if fail:
                probes.add_metric([endpoint, check, "fail"], fail)
        yield probes
        latency = GaugeMetricFamily("failover_probe_latency_seconds",
                                    "Latest probe latency (connect + first byte).",
                                    labels=["endpoint", "check"])
        for (endpoint, check), seconds in self.latency.copy().items():
            latency.add_metric([endpoint, check], seconds)
        yield latency


def label_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """`a="x",b="y"`, escaped as the exposition format wants, names in sorted order."""
    pairs = sorted(zip(names, values, strict=True))
    return ",".join('{}="{}"'.format(n, v.replace("\\", "\\\\").replace("\n", "\\n")
                                     .replace('"', '\\"')) for n, v in pairs)


class ManyGauges(Collector):
    """A gauge with a series per endpoint, as `Gauge(...).labels(...).set(v)` is used,
    whose label text is made once per series rather than at every scrape."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.values: dict[tuple[str, ...], float] = {}
        self._children: dict[tuple[str, ...], _Setter] = {}
        self._labels: dict[tuple[str, ...], str] = {}

    def labels(self, *values: str) -> _Setter:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Setter(self.values, values)
        return child

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        for values, value in self.values.copy().items():
            family.add_metric(list(values), value)
        yield family

    def text(self) -> bytes:
        out = [f"# HELP {self.name} {self.documentation}\n# TYPE {self.name} gauge\n"]
        labels = self._labels
        for values, value in self.values.copy().items():
            text = labels.get(values)
            if text is None:
                text = labels[values] = label_text(self.labelnames, values)
            out.append(f"{self.name}{{{text}}} {_go(value)}\n")
        return "".join(out).encode()


class _Setter:
    __slots__ = ("key", "values")

    def __init__(self, values: dict[tuple[str, ...], float], key: tuple[str, ...]) -> None:
        self.values, self.key = values, key

    def set(self, value: float) -> None:
        self.values[self.key] = float(value)
