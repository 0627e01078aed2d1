"""Route 53 health checks as a backstop (provider.health_checks, off by default).

Mirrors our check config into Route 53 health checks, tagged as ours, and attaches them
to the native records, so that Route 53 itself fails over while the controller is down.
One check per (endpoint, leaf check); a region with several checks gets a CALCULATED
check (healthy when any child is). Our checks are found again by their tags (adopted),
updated in place when an updatable field changes, replaced otherwise, and deleted once
no record needs them. See docs/route53.md for the cost and the trade-off.

With `networks:` every record is a geolocation record set holding the answer the
controller decided for its network: no check is attached to one, so none is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from failover.dns.base import DnsError
from failover.probes.target import ProbeTarget, targets_for
from failover.records import RecordSet

if TYPE_CHECKING:
    from failover.config import Config

log = logging.getLogger(__name__)

TAG_OWNER = "failover:owner"
TAG_KEY = "failover:check"
UPDATABLE = ("IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName", "SearchString",
             "FailureThreshold", "Inverted", "Disabled", "EnableSNI", "HealthThreshold",
             "ChildHealthChecks")


def leaf_config(cfg: Config, t: ProbeTarget) -> dict[str, Any]:
    """The Route 53 HealthCheckConfig for one of our probe targets."""
    tmpl = cfg.checks[t.check]
    out: dict[str, Any] = {
        "Type": t.type, "Port": t.port, "FailureThreshold": tmpl.failure_threshold,
        # Route 53 offers 10 s ("fast") or 30 s; the nearer one that is not slower
        "RequestInterval": 10 if tmpl.request_interval < 30 else 30,
        "Inverted": tmpl.inverted, "Disabled": tmpl.disabled,
        "MeasureLatency": tmpl.measure_latency}
    if t.ip:
        out["IPAddress"] = t.ip
    if t.fqdn:
        out["FullyQualifiedDomainName"] = t.fqdn
    if t.type != "TCP":
        out["ResourcePath"] = t.path
    if t.search is not None:
        out["SearchString"] = t.search.decode()
    if t.tls:
        out["EnableSNI"] = t.sni is not None
    return out


class HealthChecks:
    """Our Route 53 health checks for one config, found by tag and kept in sync."""

    def __init__(self, call: Callable[..., Any], owner: str) -> None:
        # the adapter's Route 53 API call (its request budget and retries): the adapter
        # owns this mirror, and the mirror knows nothing else of it
        self.call = call
        self.owner = owner
        self.ids: dict[str, str] = {}  # our key -> health check id
        self.configs: dict[str, dict[str, Any]] = {}
        self.strays: set[str] = set()  # ids of ours that no key points to any more
        self.loaded = False

    def load(self) -> None:
        """Find our checks by their tags (read only)."""
        checks: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {}
        while True:
            page = self.call("list_health_checks", **kwargs)
            for hc in page["HealthChecks"]:
                checks[hc["Id"]] = hc["HealthCheckConfig"]
            if not page.get("IsTruncated"):
                break
            kwargs["Marker"] = page["NextMarker"]
        ids = list(checks)
        self.ids, self.configs, self.strays = {}, {}, set()
        for i in range(0, len(ids), 10):
            tags = self.call("list_tags_for_resources", ResourceType="healthcheck",
                             ResourceIds=ids[i:i + 10])
            for item in tags["ResourceTagSets"]:
                t = {x["Key"]: x["Value"] for x in item.get("Tags", [])}
                if t.get(TAG_OWNER) != self.owner or TAG_KEY not in t:
                    continue
                hid = item["ResourceId"]
                if t[TAG_KEY] in self.ids:
                    self.strays.add(hid)
                else:
                    self.ids[t[TAG_KEY]] = hid
                    self.configs[t[TAG_KEY]] = checks[hid]
        self.loaded = True

    def sync(self, cfg: Config) -> None:
        """Create, update or replace our checks so they mirror `cfg` (none with
        networks: nothing would point at them, and those left are deleted after the
        next write)."""
        if not self.loaded:
            self.load()
        targets = [] if cfg.networks else targets_for(cfg)
        by_region: dict[str, list[str]] = {}
        for t in targets:
            key = t.key
            self._ensure(key, leaf_config(cfg, t))
            by_region.setdefault(t.endpoint.split("/", 1)[0], []).append(key)
        for region, keys in by_region.items():
            if len(keys) > 1:
                self._ensure(f"region:{region}", {
                    "Type": "CALCULATED", "HealthThreshold": 1, "Inverted": False,
                    "Disabled": False, "ChildHealthChecks": sorted(self.ids[k] for k in keys)})
        wanted = {t.key for t in targets} | {f"region:{r}" for r, k in by_region.items()
                                                       if len(k) > 1}
        for key in list(self.ids):
            if key not in wanted:
                self.strays.add(self.ids.pop(key))
                self.configs.pop(key, None)

    def region_check(self, cfg: Config, region: str) -> str | None:
        """The check that stands for a region: its CALCULATED one, or its only check."""
        if f"region:{region}" in self.ids:
            return self.ids[f"region:{region}"]
        keys = [k for k in self.ids if k.startswith(f"{region}/")]
        return self.ids[keys[0]] if len(keys) == 1 else None

    def decorate(self, cfg: Config, desired: Iterable[RecordSet]) -> list[RecordSet]:
        """Attach each native record's region check (failover: the region of its values).
        A geolocation record set gets none: it holds the answer the controller decided
        for its network, and Route 53 would send a network whose check fails to the
        default location's answer, not to another region."""
        region_of = {ep.address: r for r, _, _, ep in cfg.all_endpoints()}
        out = []
        for rs in desired:
            if rs.geo is not None:
                out.append(rs)
                continue
            region = rs.set_identifier if rs.set_identifier in cfg.regions else None
            if rs.failover:
                regions = {region_of.get(v.rstrip(".") + "." if rs.type == "CNAME" else v)
                           for v in rs.values}
                region = regions.pop() if len(regions) == 1 else None
            check = self.region_check(cfg, region) if region else None
            out.append(replace(rs, health_check_id=check) if check and rs.type != "TXT" else rs)
        return out

    def prune(self) -> None:
        """Delete our checks that nothing wants; one still in use waits for the next run."""
        for hid in sorted(self.strays):
            try:
                self.call("delete_health_check", HealthCheckId=hid)
                self.strays.discard(hid)
            except DnsError as exc:
                log.info("event=health_check_kept id=%s reason=%r", hid, str(exc))

    def _ensure(self, key: str, config: dict[str, Any]) -> None:
        have = self.configs.get(key)
        if have is not None and all(have.get(k) == v for k, v in config.items()):
            return
        if have is not None and all(have.get(k) == config.get(k) for k in config
                                    if k not in UPDATABLE):
            changes = {k: v for k, v in config.items() if k in UPDATABLE and have.get(k) != v}
            self.call("update_health_check", HealthCheckId=self.ids[key], **changes)
            self.configs[key] = {**have, **changes}
            return
        if have is not None:  # a field Route 53 cannot change: replace the check
            self.strays.add(self.ids.pop(key))
        result = self.call("create_health_check",
                           CallerReference=f"failover-{self.owner}-{time.time_ns()}",
                           HealthCheckConfig=config)
        hid = result["HealthCheck"]["Id"]
        self.call("change_tags_for_resource", ResourceType="healthcheck",
                  ResourceId=hid, AddTags=[{"Key": TAG_OWNER, "Value": self.owner},
                                           {"Key": TAG_KEY, "Value": key}])
        self.ids[key], self.configs[key] = hid, config
