"""What each sink is sent for a batch: Slack's text, PagerDuty's events, our JSON. Pure.

Slack incoming webhooks take `{"text": ...}`; PagerDuty's Events API v2 takes one event
per incident (`routing_key`, `event_action`, `dedup_key`, `payload` with `summary` of at
most 1,024 characters, `source`, `severity`, `timestamp`, `component`, `group`, `class`,
`custom_details`); the webhook gets our notices with their history events, signed with
HMAC-SHA256 over `timestamp.body` when a secret is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from failover.notify.notice import Batch, Entry

SUMMARY_MAX = 1024  # PagerDuty's limit on payload.summary
SIGNATURE_HEADER = "X-Failover-Signature"
TIMESTAMP_HEADER = "X-Failover-Timestamp"


@dataclass(frozen=True)
class Origin:
    """Who speaks: the zone(s) it manages, its owner id (incidents' keys), its host."""

    zone: str
    owner: str
    host: str


def _names(e: Entry) -> str:
    shown = ", ".join(e.names)
    more = e.count - len(e.names)
    return shown + (f" and {more:,} more" if more > 0 else "")


def headline(e: Entry) -> str:
    """One line a person reads: what moved, how many, the first names, why."""
    regions = ", ".join(e.regions)
    count = f"{e.count:,} answer{'s' if e.count != 1 else ''}"
    if e.kind == "failover" or (e.kind == "drill" and e.incident.startswith("region/")
                                 and not e.resolve):
        what = "Drill: " if e.kind == "drill" else "Failover: "
        return f"{what}{count} moved away from {regions} ({_names(e)}). Why: {e.message}"
    if e.kind == "failback" or (e.kind == "drill" and e.incident.startswith("region/")):
        what = "Drill: " if e.kind == "drill" else "Failback: "
        return f"{what}{count} back on {regions} ({_names(e)}). Why: {e.message}"
    if e.kind == "degraded":
        return ("Controller no longer degraded: " if e.resolve else
                "Controller degraded (/readyz): ") + e.message
    said = e.message[0].upper() + e.message[1:] if e.message else e.kind
    return said + (f" (and {e.count - 1:,} more like it)" if e.count > 1 else "")


def slack(batch: Batch, origin: Origin) -> dict[str, Any]:
    """A Slack incoming-webhook message: one line per entry."""
    lines = [f"*failover* ({origin.zone}):"] + [f"• {headline(e)}" for e in batch.ordered()]
    if batch.dropped:
        lines.append(f"• {batch.dropped:,} more notice(s) dropped (too many at once)")
    return {"text": "\n".join(lines)}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def pagerduty(batch: Batch, origin: Origin, routing_key: str, severity: str
              ) -> list[dict[str, Any]]:
    """Events API v2 events: per incident its last word in the batch, a trigger or a
    resolve, with one dedup_key per region (or per override, or `degraded`)."""
    out = []
    for e in batch.last_word():
        event: dict[str, Any] = {"routing_key": routing_key,
                                 "event_action": "resolve" if e.resolve else "trigger",
                                 "dedup_key": f"failover/{origin.owner}/{e.incident}"}
        if not e.resolve:
            sev = (severity if e.kind == "failover" else
                   "error" if e.kind == "degraded" else "info")
            text = headline(e)
            event["payload"] = {
                "summary": text if len(text) <= SUMMARY_MAX else text[:SUMMARY_MAX - 3] + "...",
                "source": origin.host, "severity": sev, "timestamp": _iso(e.last_at),
                "component": ", ".join(e.regions) or "controller", "group": origin.zone,
                "class": e.kind,
                "custom_details": {"answers": e.count, "first": e.names, "why": e.message,
                                   "regions": list(e.regions)}}
        out.append(event)
    return out


def webhook(batch: Batch, origin: Origin, now: float) -> dict[str, Any]:
    """Our own JSON: the notices (coalesced) with their first history events."""
    return {
        "source": origin.host, "zone": origin.zone, "owner": origin.owner, "sent_at": now,
        "notices": [{
            "kind": e.kind, "resolve": e.resolve, "incident": e.incident,
            "regions": list(e.regions), "message": e.message, "text": headline(e),
            "count": e.count, "names": e.names, "first_at": e.first_at, "last_at": e.last_at,
            "events": [{"at": ev.at, "kind": ev.kind, "subject": ev.subject,
                        "message": ev.message, "detail": dict(ev.detail)} for ev in e.events]}
            for e in batch.ordered()],
        "dropped": batch.dropped}


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `timestamp.body` under the webhook's secret."""
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()


def encode(payload: Any) -> bytes:
    """The body sent: compact JSON."""
    return json.dumps(payload, separators=(",", ":"), default=str).encode()
