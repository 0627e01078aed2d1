"""Descriptions for every field of the config's JSON Schema (`failover schema`), so an
editor explains each key: the comment written beside the field in failover/config/,
else the sentence below (the same words as docs/configuration.md)."""

from __future__ import annotations

import inspect
import re
from typing import Any

WORDS = {
    "Config.zone": "The DNS zone the records live in (one-zone form; or list zones:).",
    "Config.provider": "Where the zone's records are written: rfc2136 (or bind), zonefile, "
                       "route53 or none.",
    "Config.zones": "Several zones, each with its provider; a record goes to the longest "
                    "zone its name ends with.",
    "Config.controller": "The long-lived service: state, HTTP listener, API token, refresh, "
                         "history retention.",
    "Config.plan": "Safety guards applied to every plan before it is written.",
    "Config.ownership": "Which names this controller may write (TXT ownership markers).",
    "Config.drill": "Where `failover drill` watches the answers move.",
    "Config.checks": "Health check templates by name, with Route 53's fields.",
    "Config.regions": "Regions by name, each with its endpoints.",
    "Config.pools": "Per-service endpoints per region: pool -> region -> endpoints.",
    "Config.records": "The DNS names the controller manages and how each picks its answer.",
    "ZoneSpec.zone": "The DNS zone.",
    "ZoneSpec.provider": "Where this zone's records are written.",
    "TsigKey.name": "The TSIG key's name, as the server knows it.",
    "TsigKey.algorithm": "The TSIG algorithm (hmac-sha256 by default).",
    "TsigKey.secret_env": "The environment variable holding the base64 secret (a name, "
                          "never the secret).",
    "TsigKey.secret_file": "A file holding the base64 secret (relative to the config).",
    "BindProvider.type": "rfc2136 (or bind): any RFC 2136 server, BIND, Knot, PowerDNS.",
    "BindProvider.server": "The primary server's IP address.",
    "BindProvider.port": "The server's port.",
    "BindProvider.tsig": "The TSIG key that signs updates and transfers.",
    "BindProvider.transport": "udp (TCP for large messages) or tcp always.",
    "BindProvider.timeout": "Seconds to wait for each answer.",
    "ZonefileProvider.type": "zonefile: a zone file rewritten, checked and reloaded.",
    "ZonefileProvider.path": "The zone file (relative to the config).",
    "ZonefileProvider.server": "Where the zone is served, to confirm the new serial.",
    "ZonefileProvider.port": "The port the zone is served on.",
    "ZonefileProvider.timeout": "Seconds for a reload to be served.",
    "Route53Provider.type": "route53: an Amazon Route 53 hosted zone.",
    "Route53Provider.hosted_zone_id": "The hosted zone's id (Z...).",
    "Route53Provider.endpoint_url": "Another endpoint for the Route 53 API (moto_server in "
                                    "tests).",
    "Route53Provider.profile": "The AWS profile for credentials (else the usual chain).",
    "Route53Provider.max_requests_per_second": "The budget of Route 53 API requests "
                                               "(Route 53 allows 5 per account).",
    "Route53Provider.insync_timeout": "Seconds to wait for INSYNC with wait_insync.",
    "Route53Provider.health_check_ids": "Route 53 health checks already attached, by the "
                                        "address they answer with: kept attached (import).",
    "OwnershipSettings.adopt": "Mark unmarked names that already hold what the config asks "
                               "for: markers only, answers untouched (import).",
    "Route53Location.continent": "A continent code: AF, AN, AS, EU, NA, OC or SA.",
    "Route53Location.country": "A two-letter country code (ISO 3166), such as DE.",
    "Route53Location.subdivision": "A subdivision of the country, such as CA for "
                                   "California (US states).",
    "Route53Provider.replace": "How a record set is replaced: delete_create (DELETE of the "
                               "values read + CREATE: refused if it changed meanwhile), "
                               "upsert, or auto (upsert with endpoint_url: moto_server).",
    "NoneProvider.type": "none: decide and show, write nothing.",
    "HistorySettings.keep_days": "Drop history events older than this many days.",
    "HistorySettings.keep_events": "Keep at most this many history events, the newest.",
    "ControllerSettings.state": "The state file (SQLite), relative to the config.",
    "ClusterSettings.etcd": "The etcd cluster the fleet coordinates through.",
    "ClusterSettings.vantage": "Where this instance probes from (default: the host name).",
    "ClusterSettings.lease_ttl": "Seconds of the instance's lease: a dead leader is replaced "
                                 "within about this.",
    "EtcdSettings.endpoints": "The etcd members' client URLs, http(s)://HOST:PORT.",
    "EtcdSettings.prefix": "The key prefix all of this fleet's keys live under.",
    "EtcdSettings.ca_file": "TLS: the CA that signed the etcd members' certificates.",
    "EtcdSettings.cert_file": "TLS client certificate (with key_file).",
    "EtcdSettings.key_file": "TLS client key (with cert_file).",
    "EtcdSettings.user": "etcd user (auth), with password_env or password_file.",
    "EtcdSettings.password_env": "The environment variable holding the etcd password.",
    "EtcdSettings.password_file": "A file holding the etcd password.",
    "ControllerSettings.listen": "HOST:PORT of the HTTP endpoint (status page, /status, "
                                 "/metrics, the API).",
    "ControllerSettings.token_file": "A file holding the API's bearer token.",
    "ControllerSettings.history": "History retention.",
    "OwnershipSettings.owner_id": "This controller's id in the ownership markers.",
    "OwnershipSettings.marker_prefix": "The label before a name where its marker lives.",
    "OwnershipSettings.prune": "Delete the names this controller marked that are no "
                               "longer in the config (with their markers, under the "
                               "delete-share guard); false keeps them in DNS.",
    "PlanSettings.max_delete_share": "Refuse a plan deleting more than this share of the "
                                     "managed records (past min_existing).",
    "PlanSettings.min_existing": "The delete-share guard applies from this many records.",
    "CheckTemplate.type": "HTTP, HTTPS, HTTP_STR_MATCH, HTTPS_STR_MATCH, TCP or CALCULATED.",
    "CheckTemplate.search_string": "STR_MATCH: text the first 5,120 bytes must contain.",
    "CheckTemplate.inverted": "Healthy when the check fails (Route 53's inversion).",
    "CheckTemplate.disabled": "Always healthy (before inversion), as Route 53.",
    "CheckTemplate.request_interval": "Seconds between probes of an endpoint.",
    "CheckTemplate.failure_threshold": "Consecutive results that flip the status.",
    "CheckTemplate.measure_latency": "Record latency (latency routing uses it).",
    "CheckTemplate.enable_sni": "Send the host name in the TLS handshake.",
    "CheckTemplate.health_threshold": "CALCULATED: how many child checks must be healthy.",
    "CheckTemplate.vantage_threshold_percent": "Healthy when more than this share of "
                                               "vantages say so (Route 53: 18%).",
    "Endpoint.address": "An IP address or host name the record answers with.",
    "Endpoint.name": "A label for the endpoint in status and history.",
    "Endpoint.ip": "Probe this IP address instead of the address.",
    "Endpoint.fqdn": "The host name sent in probes (Host header, SNI).",
    "Endpoint.port": "Probe this port instead of the check's.",
    "Endpoint.check": "The check template that probes this endpoint (none: always healthy).",
    "Record.name": "The DNS name, inside a zone.",
    "Record.type": "A, AAAA or CNAME.",
    "Record.ttl": "Seconds resolvers may cache the answer.",
    "Record.policy": "failover, weighted or latency.",
    "Record.fail_mode": "When no region is usable: open (answer as if healthy), "
                        "last_known_good, or closed (no answer).",
    "Record.failback_delay": "failover: seconds a recovered tier must stay healthy before "
                             "it answers again.",
    "Record.latency_hysteresis_percent": "latency: move only to a region faster by more "
                                         "than this share...",
    "Record.latency_hysteresis_ms": "...and by more than this many milliseconds.",
}


def _comments(cls: type) -> dict[str, str]:
    """Field -> the comment beside it (same line) or just above it, in the class source."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        field = re.match(r"\s+(\w+)\s*:", line)
        if field:
            beside = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            text = beside or " ".join(above)
            if text:
                out[field.group(1)] = text[0].upper() + text[1:]
        above = []
    return out


def describe(schema: dict[str, Any], models: dict[str, type]) -> dict[str, Any]:
    """Give every property of `schema` (and of its $defs) a description."""
    for name, node in [("Config", schema), *schema.get("$defs", {}).items()]:
        cls = models.get(name)
        comments: dict[str, str] = {}
        for klass in reversed(cls.__mro__ if cls is not None else ()):  # inherited fields too
            comments.update(_comments(klass) if klass.__module__.startswith("failover.")
                            else {})
        for field, prop in node.get("properties", {}).items():
            if not prop.get("description"):
                text = comments.get(field) or WORDS.get(f"{name}.{field}")
                if text:
                    prop["description"] = text
    return schema
