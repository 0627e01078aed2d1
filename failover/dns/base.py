"""What every DNS adapter provides, the errors they raise, and the shared confirmation step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from failover.errors import FailoverError
from failover.plan import ChangeSet, ManagedKey, apply_to
from failover.records import RecordSet

if TYPE_CHECKING:
    from failover.dns.ownership import Registry

log = logging.getLogger(__name__)


class DnsError(FailoverError):
    """A DNS read or write failed; the message carries the server's answer."""


class DnsUnavailable(DnsError):
    """The server did not answer or failed (timeout, refused connection, SERVFAIL): retry."""


class DnsServerFailed(DnsUnavailable):
    """The server answered SERVFAIL: retry; but it answered, so it is reached (a leader
    whose writes fail so is not cut off from DNS, and handing over would not help)."""


class DnsConflict(DnsError):
    """The zone changed since it was read (a prerequisite failed): read again and re-plan."""


class DnsRejected(DnsError):
    """The server refused the request (TSIG key, REFUSED, NOTAUTH): retrying will not help."""


class DnsFenced(DnsRejected):
    """A newer leader of the fleet holds the zone's fence: this instance was deposed, and
    the server refused its write (the fence is a prerequisite of every write)."""

    def __init__(self, message: str, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


class WriterDeposed(DnsError):
    """A fleet leader's local deadline passed in the middle of a write: nothing more was
    sent (its lease may have ended, and another instance may lead)."""


def check_writer(may_write: Callable[[], bool] | None) -> None:
    """Raise WriterDeposed unless this instance may still write (checked before every
    message a write sends, retries included)."""
    if may_write is not None and not may_write():
        raise WriterDeposed("this instance's lease deadline passed during the write: the "
                            "rest was not sent")


FENCE_LABEL = "_failover-leader"  # the TXT record holding the writing leader's epoch


DEFAULT_OWNER = "failover"


def fence_name(zone: str, owner: str = DEFAULT_OWNER) -> str:
    """The zone's fence for the controllers of one owner_id (several owners may share a
    zone, each writing its own names)."""
    return f"{FENCE_LABEL}.{zone}" if owner == DEFAULT_OWNER else f"{FENCE_LABEL}.{owner}.{zone}"


def fence_value(epoch: int, holder: str, renewed: int | None = None) -> str:
    """The fence TXT's value (presentation form) for a leader; `renewed` (unix seconds):
    a single controller's last renewal, so a fence left by one that stopped long ago can
    be told from a live one."""
    value = f'"epoch={epoch}" "leader={holder}"'
    return value if renewed is None else f'{value} "renewed={renewed}"'


def fence_fields(values: Sequence[str]) -> dict[str, str]:
    """The key=value fields of a fence TXT's values (epoch, leader, renewed)."""
    import re

    return {m.group(1): m.group(2) for v in values
            for m in re.finditer(r'"?([a-z]+)=([^"\s]*)"?', v)}


def fence_epoch(values: Sequence[str]) -> int | None:
    """The epoch a fence TXT holds (the highest, should there be several), None if none."""
    import re

    found = [int(m.group(1)) for v in values for m in [re.search(r"epoch=(\d+)", v)] if m]
    return max(found) if found else None


def fence_held(zone: str, values: Sequence[str], epoch: int) -> int | None:
    """The epoch the fence holds (None: no fence yet); raises DnsFenced when it is newer
    than `epoch`: a newer leader took the zone, this instance was deposed."""
    held = fence_epoch(values)
    if held is not None and held > epoch:
        raise DnsFenced(f"{zone}: a newer leader (epoch {held}) holds the fence "
                        f"{fence_name(zone)}; this instance (epoch {epoch}) was deposed "
                        "and writes nothing", held)
    return held


def take_fence(zone: str, epoch: int, mine: str, read: Callable[[], list[str]],
               replace: Callable[[list[str]], bool]) -> bool:
    """A new leader's first write (or a renewal): read the fence, and replace the values
    read with `mine` by `replace` (one atomic write that requires them; False when the
    fence moved meanwhile: read again). True when it wrote, False when the fence held
    `mine` already. Raises DnsFenced (a newer epoch holds it) or DnsConflict (it kept
    moving)."""
    for _ in range(5):
        values = read()
        held = fence_held(zone, values, epoch)
        if values == [mine]:
            return False
        if replace(values):
            log.info("event=fence_taken zone=%s epoch=%d previous=%s", zone, epoch, held)
            return True
    raise DnsConflict(f"{zone}: the fence {fence_name(zone)} kept changing; trying again")


def unlisted(zone: str, why: str) -> None:
    """Say (a warning) that names removed from the config cannot be found in `zone`, so
    they are not pruned: its reads do not list the whole zone, for the reason `why`."""
    log.warning("event=orphans_not_listed zone=%s reason=%r: names removed from the config "
                "are not found in this zone, nor deleted (ownership.prune)", zone, why)


class DnsUnconfirmed(DnsError):
    """The write was accepted but the server does not serve the intended answer."""


@dataclass
class ApplyReport:
    """What an apply did: messages sent, time to acknowledgement and to confirmation."""

    changes: int = 0
    messages: int = 0
    applied_s: float = 0.0
    confirmed_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # names not written, and why


class Adapter(Protocol):
    """A DNS provider: read managed records, apply a ChangeSet, ask what is served."""

    zone: str
    native_routing: bool  # can express weighted/failover/latency records itself

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """The actual record sets for the given (name, type) keys.

        With a `registry`, a read that lists the whole zone (AXFR, a full listing, the
        zone file) also returns the names that registry's owner marked which are not
        among `keys` (`Registry.pick`); a read that cannot list the zone returns `keys`
        alone and says so once, in a warning (see `unlisted`).
        """
        ...

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Write `changes` (planned against `actual`) and confirm they are served."""
        ...

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """What the authoritative server answers now for the given keys."""
        ...

    def prepare(self) -> None:
        """Before a planned write: set up what records will refer to (may write)."""
        ...

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """The desired record sets with provider-side attributes added (read only)."""
        ...


def confirm(served: Callable[[Collection[ManagedKey]], list[RecordSet]], changes: ChangeSet,
            actual: Sequence[RecordSet], timeout: float = 2.0) -> float:
    """Wait until the server serves what `changes` intends for every changed key.

    Returns the seconds it took; raises DnsUnconfirmed after `timeout` naming the records
    that differ. Values and presence are compared, not TTLs of cached answers.
    """
    keys = {(c.record.name, c.record.type) for c in changes.changes}
    if not keys:
        return 0.0
    expected = {(r.name, r.type): r.values for r in apply_to(actual, changes)
                if (r.name, r.type) in keys}
    start = time.monotonic()
    while True:
        now = {(r.name, r.type): r.values for r in served(keys)}
        wrong = sorted(k for k in keys if now.get(k) != expected.get(k))
        if not wrong:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            detail = "; ".join(f"{n} {t}: serves {list(now.get((n, t), ()))}, expected "
                               f"{list(expected.get((n, t), ()))}" for n, t in wrong[:5])
            raise DnsUnconfirmed(f"not served after {timeout:g} s: {detail}")
        time.sleep(0.01)
