"""One zone served from several BIND views: one answer per client network.

BIND picks the view that answers a request by its source address or by the TSIG key
that signs it (`match-clients { key view-europe; !key view-default; 127.0.0.128/25; }`).
`ViewsAdapter` keeps one `BindAdapter` per view, signing everything it sends with that
view's key: the transfer that reads the view, the UPDATEs that write it (today's
prerequisites, ownership markers, fence and size-proof batching, each view its own) and
the queries that confirm it, so the view that answers is the one written.

Record sets carry their view as their set identifier (the network's name): the ledger
plans each view's answer and marker apart, and this adapter splits a plan by view and
writes the views in parallel. A view that fails (its key refused, say) does not hold
back the others: they are read and written, and the failure is raised afterwards naming
the view, so the writer degrades with it and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from failover.dns.base import ApplyReport, DnsError, DnsFenced
from failover.dns.bind import BindAdapter
from failover.plan import Change, ChangeSet, ManagedKey
from failover.records import RecordSet

if TYPE_CHECKING:
    from pydantic import SecretStr

    from failover.config import BindProvider
    from failover.dns.ownership import Registry
    from failover.dns.signing import SigningKey

log = logging.getLogger(__name__)
T = TypeVar("T")


class ViewsAdapter:
    """A zone written to every view of one server, each view through its own key."""

    native_routing = False

    def __init__(self, zone: str, provider: BindProvider,
                 keys: Mapping[str, SigningKey | SecretStr | None]) -> None:
        """`keys`: each view's TSIG key (a SigningKey re-reads its file when refused)."""
        self.zone = zone
        self.views: dict[str, BindAdapter] = {}
        for net in provider.views or {}:
            one = BindAdapter(zone, view_provider(provider, net), keys[net])
            one.sign_queries = True
            one.where = f"{one.where} view {net}"
            self.views[net] = one
        self.failed: dict[str, str] = {}  # views the last read or fence failed on, and why
        self._pool = ThreadPoolExecutor(max_workers=len(self.views) or 1,
                                        thread_name_prefix="view")

    # ------------------------------------------------------------------ the fence

    @property
    def fence_owner(self) -> str:
        return next(iter(self.views.values())).fence_owner

    @fence_owner.setter
    def fence_owner(self, owner: str) -> None:
        for one in self.views.values():
            one.fence_owner = owner

    @property
    def may_write(self) -> Callable[[], bool] | None:
        return next(iter(self.views.values())).may_write

    @may_write.setter
    def may_write(self, check: Callable[[], bool] | None) -> None:
        for one in self.views.values():
            one.may_write = check

    def fence(self, epoch: int | None, holder: str = "", renewed: int | None = None) -> None:
        """Fence every view's writes with the writer's epoch (each view holds a fence)."""
        for one in self.views.values():
            one.fence(epoch, holder, renewed)

    def read_fence(self) -> list[str]:
        """The fence's values in every view that answers (a view that does not is left
        to its writes to name); raises when none does."""
        found = self._some(lambda net, a: a.read_fence())
        return list(dict.fromkeys(v for values in found.values() for v in values))

    def take_over(self) -> bool:
        """Take the fence in every view; True when any was written. A view that fails
        (its key refused) is named when its writes fail; raises when every view fails,
        or DnsFenced when a newer writer holds any."""
        return any(self._some(lambda net, a: a.take_over()).values())

    def _some(self, fn: Callable[[str, BindAdapter], T]) -> dict[str, T]:
        """`fn` on every view: the results of those that answered; the first error when
        none did, or when one found a newer writer's fence."""
        results = self._each(fn)
        errors = {n: r for n, r in results.items() if isinstance(r, DnsError)}
        fenced = [e for e in errors.values() if isinstance(e, DnsFenced)]
        if fenced:
            raise fenced[0]
        if errors and len(errors) == len(results):
            raise next(iter(errors.values()))
        failed = {n: str(e) for n, e in errors.items()}
        for n, e in failed.items():  # said when it starts or changes, not at every read
            if self.failed.get(n) != e:
                log.error("event=view_failed zone=%s view=%s error=%r", self.zone, n, e)
        self.failed = failed
        return {n: r for n, r in results.items() if not isinstance(r, DnsError)}

    # ------------------------------------------------------------------ reads

    def _each(self, fn: Callable[[str, BindAdapter], T],
              only: Collection[str] | None = None) -> dict[str, T | DnsError]:
        """`fn` on every view (or those in `only`) in parallel: each one's result, or
        its DnsError."""
        def run(net: str) -> T | DnsError:
            try:
                return fn(net, self.views[net])
            except DnsError as exc:
                exc.args = (f"view {net}: {exc.args[0] if exc.args else exc}", *exc.args[1:])
                return exc

        nets = [n for n in self.views if only is None or n in only]
        if len(nets) == 1:
            return {nets[0]: run(nets[0])}
        return dict(zip(nets, self._pool.map(run, nets), strict=True))

    def read(self, keys: Collection[ManagedKey], registry: Registry | None = None
             ) -> list[RecordSet]:
        """Every view's record sets, each tagged with its view. A view that cannot be
        read is left out (its writes will fail and say why) unless none can be: then
        the first error is raised."""
        found = self._some(lambda net, a: a.read(keys, registry))
        return [replace(rs, set_identifier=n) for n, sets in found.items() for rs in sets]

    def served(self, keys: Collection[ManagedKey]) -> list[RecordSet]:
        """What each view answers for the keys (queries signed with its key)."""
        results = self._each(lambda net, a: a.served(keys))
        out = []
        for n, found in results.items():
            if isinstance(found, DnsError):
                raise found
            out += [replace(rs, set_identifier=n) for rs in found]
        return out

    def serial(self) -> int | None:
        """The sum of the views' SOA serials (mod 2**32; None: unknown): it moves by
        exactly the messages written to all views, as one server's serial moves by its
        own, so a refresh after the controller's own writes still reads nothing. The
        server is reached when any view answers."""
        serials = self._some(lambda net, a: a.serial())
        if any(v is None for v in serials.values()):
            return None
        return sum(v for v in serials.values() if v is not None) % 2**32

    def prepare(self) -> None:
        """Nothing to set up before a write."""

    def decorate(self, desired: list[RecordSet]) -> list[RecordSet]:
        """No provider-side attributes: the desired records as they are."""
        return desired

    def apply(self, changes: ChangeSet, actual: Sequence[RecordSet]) -> ApplyReport:
        """Write each view's part with its key, the views in parallel; every view is
        tried, and the first error is raised after the others were written."""
        parts: dict[str, list[Change]] = {n: [] for n in self.views}
        for c in changes.changes:
            targets = [c.record.set_identifier] if c.record.set_identifier else list(parts)
            for n in targets:
                if n in parts:
                    parts[n].append(Change(c.action, _bare(c.record),
                                           None if c.before is None else _bare(c.before)))
        mine = {n: [_bare(rs) for rs in actual if rs.set_identifier == n] for n in parts}
        busy = [n for n, p in parts.items() if p]

        def write(net: str, adapter: BindAdapter) -> ApplyReport:
            return adapter.apply(changes.only(parts[net]), mine[net])

        results = self._each(write, busy)
        report = ApplyReport(changes=len(changes.changes))
        error: DnsError | None = None
        for n, r in results.items():
            if isinstance(r, DnsError):
                error = error or r
                continue
            report.messages += r.messages
            report.applied_s = max(report.applied_s, r.applied_s)
            report.confirmed_s = max(report.confirmed_s, r.confirmed_s)
            report.notes += [f"view {n}: {note}" for note in r.notes]
            report.rejected.update({name: f"view {n}: {why}" for name, why in r.rejected.items()})
        if error is not None:
            raise error
        return report


def view_provider(provider: BindProvider, network: str) -> BindProvider:
    """The provider as one view's adapter sees it: the view's key as its key."""
    assert provider.views is not None
    return provider.model_copy(update={"tsig": provider.views[network].tsig, "views": None})


def _bare(rs: RecordSet) -> RecordSet:
    """A record set as its view holds it (no set identifier)."""
    return replace(rs, set_identifier=None) if rs.set_identifier is not None else rs
