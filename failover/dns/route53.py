"""Amazon Route 53: native routing records, batches within the API limits, throttling.

A replaced record set is sent as DELETE (exactly what was read) + CREATE in one batch:
the same cost as UPSERT under Route 53's limits, and Route 53 refuses the DELETE when
the record changed since it was read, so a concurrent edit surfaces as DnsConflict and
is re-planned, never overwritten. Changes of one (name, type) always travel in one
batch; batches respect 1,000 ResourceRecord elements, 32,000 characters of values and
4,000 per value. Throttling and PriorRequestNotComplete are retried with exponential
backoff and jitter under a client-side budget of requests per second.

With `networks:`, each network's answer is one geolocation record set (SetIdentifier: the
network, GeoLocation: its `route53:` location, `*` for default), written like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from failover.dns.base import (
    DEFAULT_OWNER,
    ApplyReport,
    DnsConflict,
    DnsError,
    DnsFenced,
    DnsRejected,
    DnsUnavailable,
    check_writer,
    fence_epoch,
    fence_name,
    fence_value,
    take_fence,
    unlisted,
)
from failover.dns.route53_records import (
    _api,
    _from_api,
    batches,
    validate,
)
from failover.plan import Change, ChangeSet, ManagedKey, apply_to
from failover.records import RecordSet, absolute_name

if TYPE_CHECKING:
    from failover.config import Config, Route53Provider
    from failover.dns.ownership import Registry
    from failover.dns.route53_checks import HealthChecks

log = logging.getLogger(__name__)

THROTTLES = ("Throttling", "ThrottlingException", "PriorRequestNotComplete",
             "RequestLimitExceeded")
ATTEMPTS = 8
PAGE = 300  # record sets per ListResourceRecordSets page (Route 53's maximum)


class RateLimiter:
    """A token bucket: at most `rate` calls per second, bursts of one second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self.tokens = rate
        self.at = clock()
        self.lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a call is allowed."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens < 1:
                self.sleep((1 - self.tokens) / self.rate)
                self.tokens = 1
                self.at = self.clock()
            self.tokens -= 1


@dataclass
class CallStats:
    """API calls made and retried, by operation."""

    calls: int = 0
    retries: int = 0
    change_batches: int = 0


def _is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, _Throttled)


class _Throttled(Exception):
    pass


class Route53Adapter:
    """One hosted zone, read and written through boto3 (imported here, not before)."""

    native_routing = True

    def __init__(self, zone: str, provider: Route53Provider, client: Any = None,
                 cfg: Config | None = None) -> None:
        self.zone = zone
        self.cfg = cfg
        self.provider = provider
        self.zone_id = provider.hosted_zone_id.removeprefix("/hostedzone/")
        self.limiter = RateLimiter(provider.max_requests_per_second)
        self.stats = CallStats()
        self._pages: int | None = None  # pages the zone took to list, at the last full read
        self.epoch: int | None = None  # a fleet leader's epoch: every batch is fenced by it
        self.may_write: Callable[[], bool] | None = None  # a fleet leader's deadline check
        self.holder = ""
        self._fenced: str | None = None  # the fence TXT's value at our last write
        self.renewed: int | None = None  # a single controller's renewal stamp
        self.fence_owner = DEFAULT_OWNER  # whose fence: ownership.owner_id
        self._unlisted_said = False  # the warning that reads by name find no orphans
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            session = boto3.Session(profile_name=provider.profile)
            client = session.client(
                "route53", endpoint_url=provider.endpoint_url, region_name="us-east-1",
                # one attempt per call: our retries (budget, jitter, counting) own it
                config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"},
                                  connect_timeout=5, read_timeout=30))
        self.client = client
        self.checks: HealthChecks | None = None
        if provider.health_checks and cfg is not None:
            from failover.dns.route53_checks import HealthChecks

            self.checks = HealthChecks(self.call, cfg.ownership.owner_id)

    def name_servers(self) -> list[str]:
        """The hosted zone's delegation set: the servers that answer for it."""
        zone = self.call("get_hosted_zone", Id=self.zone_id)
        return [absolute_name(n) for n in zone.get("DelegationSet", {}).get("NameServers", [])]

    def prepare(self) -> None:
        """Before planning a write: bring our Route 53 health checks in line (backstop)."""
        if self.checks is not None and self.cfg is not None:
            self.checks.sync(self.cfg)

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """Attach the backstop health checks to the native records (when enabled), or
        the checks already attached that `health_check_ids` names."""
        if self.provider.health_check_ids and self.checks is None:
            return [_kept_check(rs, self.provider.health_check_ids) for rs in desired]
        if self.checks is None or self.cfg is None:
            return desired
        if not self.checks.loaded:
            self.checks.load()
        return self.checks.decorate(self.cfg, desired)

    # ------------------------------------------------------------------------ calls

    def call(self, operation: str, **kwargs: Any) -> Any:
        """One API call under the request budget, with throttling retried."""
        from botocore.exceptions import BotoCoreError, ClientError

        def once() -> Any:
            self.limiter.acquire()
            if operation == "change_resource_record_sets":
                check_writer(self.may_write)  # each attempt: a retry may come late
            self.stats.calls += 1
            try:
                return getattr(self.client, operation)(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in THROTTLES:
                    raise _Throttled(code) from None
                raise

        retrying = Retrying(stop=stop_after_attempt(ATTEMPTS),
                            wait=wait_random_exponential(multiplier=0.1, max=5),
                            retry=retry_if_exception(_is_throttle), reraise=True,
                            before_sleep=lambda _: self._retried())
        try:
            return retrying(once)
        except _Throttled as exc:
            raise DnsUnavailable(f"Route 53 still throttling after {ATTEMPTS} attempts "
                                 f"({exc}): retrying next tick") from None
        except ClientError as exc:
            raise self._client_error(exc) from None
        except BotoCoreError as exc:
            raise DnsUnavailable(f"Route 53 unreachable: {exc}") from None

    def _retried(self) -> None:
        self.stats.retries += 1

    def _client_error(self, exc: Any) -> DnsError:
        err = exc.response.get("Error", {})
        code, message = err.get("Code", ""), err.get("Message", "")
        if code == "InvalidChangeBatch" and any(
                s in message for s in ("not found", "already exists", "but it was not found",
                                       "values provided do not match")):
            return DnsConflict(f"{self.zone} changed since it was read ({message}): "
                               "reading again and re-planning")
        if code in ("NoSuchHostedZone", "AccessDenied", "InvalidChangeBatch", "InvalidInput"):
            return DnsRejected(f"Route 53 refused ({code}): {message}")
        return DnsUnavailable(f"Route 53 error ({code}): {message}")

    # ------------------------------------------------------------------------- read

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """Every record set of the given (name, type) keys, and with a `registry`, of the
        names it marked outside them when the zone is listed.

        Few names (fewer than the zone has pages): one ListResourceRecordSets from each
        name (StartRecordName). Many, or the first read: the whole zone, page by page. A
        failover of a few names in a zone of 10,000 is then read back in a few calls, not
        70. The first read (at start, at reload) lists the zone, so names removed from the
        config are found then; a read by name finds only `keys`.
        """
        wanted = set(keys)
        names = sorted({n for n, _ in wanted})
        if self._pages is not None and len(names) < self._pages:
            if registry is not None and not self._unlisted_said:
                self._unlisted_said = True
                unlisted(self.zone, f"read by name ({len(names)} names, {self._pages} pages "
                         "of records): only the first read after a start or reload lists "
                         "the zone")
            return [rs for name in names for rs in self._by_name(name)
                    if (rs.name, rs.type) in wanted]
        if registry is not None:
            listing = list(self._all())
            self._pages = max(1, -(-len(listing) // PAGE))
            return registry.pick(listing, wanted)
        out, seen = [], 0
        for rs in self._all():
            seen += 1
            if (rs.name, rs.type) in wanted:
                out.append(rs)
        self._pages = max(1, -(-seen // PAGE))
        return out

    def _by_name(self, name: str) -> Iterable[RecordSet]:
        kwargs: dict[str, Any] = {"HostedZoneId": self.zone_id, "StartRecordName": name,
                                  "MaxItems": str(PAGE)}
        while True:
            page = self.call("list_resource_record_sets", **kwargs)
            for item in page["ResourceRecordSets"]:
                if absolute_name(item["Name"].replace("\\052", "*")) != name:
                    return
                rs = _from_api(item)
                if rs is not None:
                    yield rs
            if not page.get("IsTruncated") or absolute_name(page["NextRecordName"]) != name:
                return
            kwargs["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """What Route 53 holds now (its API is the source of truth for what it serves)."""
        return self.read(keys)

    def _all(self) -> Iterable[RecordSet]:
        kwargs: dict[str, Any] = {"HostedZoneId": self.zone_id, "MaxItems": str(PAGE)}
        while True:
            page = self.call("list_resource_record_sets", **kwargs)
            for item in page["ResourceRecordSets"]:
                rs = _from_api(item)
                if rs is not None:
                    yield rs
            if not page.get("IsTruncated"):
                return
            kwargs["StartRecordName"] = page["NextRecordName"]
            kwargs["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
            else:
                kwargs.pop("StartRecordIdentifier", None)

    # ------------------------------------------------------------------------ write

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Validate, send in as few batches as the limits allow, confirm by reading back.

        Raises DnsRejected before any call when Route 53 would refuse the result.
        """
        report = ApplyReport(changes=len(changes.changes))
        if not changes:
            return report
        after = apply_to(actual, changes)
        problems = validate(after, {(c.record.name, c.record.type) for c in changes.changes})
        if problems:
            raise DnsRejected("Route 53 would refuse this change: " + "; ".join(problems))
        start = time.monotonic()
        change_ids = []
        if self.epoch is not None and self._fenced != self.fence_text:
            self.take_over()
        for batch in batches(changes.changes, fenced=self.epoch is not None,
                             upsert=self.provider.upserts()):
            try:
                result = self._send(batch, upsert=self.provider.upserts())
            except DnsError:
                self._fenced_conflict()
                raise
            self.stats.change_batches += 1
            change_ids.append(result["ChangeInfo"]["Id"])
            report.messages += 1
        report.applied_s = time.monotonic() - start
        if self.provider.wait_insync:
            self._wait_insync(change_ids)
            report.notes.append(f"propagated (INSYNC) {time.monotonic() - start:.1f} s "
                                "after the first change was sent")
        keys = {(c.record.name, c.record.type) for c in changes.changes}
        expected = {rs for rs in after if (rs.name, rs.type) in keys}
        got = set(self.read(keys))
        if got != expected:
            missing = sorted(f"{r.name} {r.type} {r.set_identifier or ''}".strip()
                             for r in expected ^ got)
            raise DnsConflict(f"Route 53 does not hold what was written ({', '.join(missing[:5])})"
                              ": reading again and re-planning")
        report.confirmed_s = time.monotonic() - start - report.applied_s
        if self.checks is not None:
            self.checks.prune()  # records no longer point at the checks it deletes
        log.info("event=dns_applied zone=%s provider=route53 changes=%d batches=%d calls=%d "
                 "retries=%d applied_ms=%.1f", self.zone, report.changes, report.messages,
                 self.stats.calls, self.stats.retries, report.applied_s * 1000)
        return report

    def _send(self, batch: list[Change], *, upsert: bool) -> Any:
        return self.call("change_resource_record_sets", HostedZoneId=self.zone_id,
                         ChangeBatch={"Comment": "failover", "Changes": [
                             *self._fence_changes(),
                             *[c for ch in batch for c in _api(ch, upsert=upsert)]]})

    # ----------------------------------------------------------------------- fence

    def fence(self, epoch: int | None, holder: str = "", renewed: int | None = None) -> None:
        """Fence every batch from now on with `epoch` (None: no fence): each batch
        deletes the fence TXT with this writer's exact value and creates it again, so
        Route 53 refuses the whole batch once a newer writer replaced the value;
        `renewed`: a single controller's renewal stamp."""
        self.epoch, self.holder, self.renewed = epoch, holder, renewed

    @property
    def fence_text(self) -> str:
        assert self.epoch is not None
        return fence_value(self.epoch, self.holder, self.renewed)

    def read_fence(self) -> list[str]:
        """The fence TXT's values ([] when absent)."""
        name = fence_name(self.zone, self.fence_owner)
        page = self.call("list_resource_record_sets", HostedZoneId=self.zone_id,
                         StartRecordName=name, StartRecordType="TXT", MaxItems="1")
        for item in page.get("ResourceRecordSets", []):
            if absolute_name(item["Name"]) == name and item["Type"] == "TXT":
                return [r["Value"] for r in item.get("ResourceRecords", [])]
        return []

    @property
    def _create(self) -> str:
        """The fence's re-creation after the DELETE of its exact value (which keeps the
        compare-and-swap): UPSERT where CREATE is refused for a value seen before."""
        return "UPSERT" if self.provider.upserts() else "CREATE"

    def _fence_set(self, values: Sequence[str]) -> dict[str, Any]:
        return {"Name": fence_name(self.zone, self.fence_owner), "Type": "TXT", "TTL": 60,
                "ResourceRecords": [{"Value": v} for v in values]}

    def _fence_changes(self) -> list[dict[str, Any]]:
        if self.epoch is None:
            return []
        mine = self._fence_set([self.fence_text])
        return [{"Action": "DELETE", "ResourceRecordSet": mine},
                {"Action": self._create, "ResourceRecordSet": mine}]

    def take_over(self) -> bool:
        """Replace the fence with this leader's epoch in one batch that deletes the exact
        value read (Route 53 refuses it when another leader changed it meanwhile). True
        when it wrote; raises DnsFenced when the fence holds a newer epoch."""
        epoch = self.epoch
        if epoch is None or self._fenced == self.fence_text:
            return False
        mine = self.fence_text

        def replace(values: list[str]) -> bool:
            batch = ([{"Action": "DELETE", "ResourceRecordSet": self._fence_set(values)}]
                     if values else [])
            batch.append({"Action": self._create, "ResourceRecordSet": self._fence_set([mine])})
            try:
                self.call("change_resource_record_sets", HostedZoneId=self.zone_id,
                          ChangeBatch={"Comment": "failover fence", "Changes": batch})
            except (DnsConflict, DnsRejected):
                return False  # it moved between reading and writing
            return True

        took = take_fence(self.zone, epoch, mine, self.read_fence, replace)
        self._fenced = mine
        return took

    def _fenced_conflict(self) -> None:
        """After a refused batch: DnsFenced when a newer leader holds the fence."""
        if self.epoch is None:
            return
        held = fence_epoch(self.read_fence())
        if held is not None and held > self.epoch:
            raise DnsFenced(f"Route 53 refused the batch for {self.zone}: a newer leader "
                            f"(epoch {held}) holds the fence; this instance (epoch "
                            f"{self.epoch}) was deposed", held)
        if held != self.epoch:
            self._fenced = None

    def _wait_insync(self, change_ids: list[str]) -> None:
        deadline = time.monotonic() + self.provider.insync_timeout
        for cid in change_ids:
            while True:
                status = self.call("get_change", Id=cid)["ChangeInfo"]["Status"]
                if status == "INSYNC":
                    break
                if time.monotonic() > deadline:
                    raise DnsUnavailable(f"change {cid} not INSYNC after "
                                         f"{self.provider.insync_timeout:g} s")
                time.sleep(1)


def _kept_check(rs: RecordSet, ids: dict[str, str]) -> RecordSet:
    """A routing record with the check already attached to its addresses, when they
    all name one (a geolocation record set holds a network's decided answer: none)."""
    if rs.geo is not None or rs.type == "TXT" or not (rs.failover or rs.weight is not None
                                                      or rs.region):
        return rs
    found = {ids.get(v, ids.get(v.rstrip("."))) for v in rs.values}
    if len(found) != 1 or None in found:
        return rs
    return replace(rs, health_check_id=found.pop())
