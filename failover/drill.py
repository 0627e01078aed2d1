"""`failover drill`: a controlled failover of a region against the live setup, timed.

It records what the provider's server answers for every record that answers from the
region, forces the region out (a drain override, or a fault that makes its checks fail
inside the running controller), measures until every answer has moved, restores, and
measures the way back. The result goes into the history.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from failover.errors import FailoverError, InputError
from failover.overrides import stranded, who
from failover.state.store import Event, Override, OverrideKind, StateStore

if TYPE_CHECKING:
    from failover.config import Config
    from failover.dns.base import Adapter

Mode = Literal["drain", "fail-checks"]


def _answers(adapter: Adapter, keys: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {k: set() for k in keys}
    for rs in adapter.served(keys):
        out[(rs.name, rs.type)] |= set(rs.values)
    return out


def _first(state: StateStore, since: float, kind: str, subject: str | None = None) -> float | None:
    for e in state.history(since=since):
        if e.kind == kind and (subject is None or e.subject == subject):
            return e.at
    return None


def drill(cfg: Config, state: StateStore, adapter: Adapter, region: str, mode: Mode, *,
          timeout: float = 120.0, poll: float = 0.02) -> dict[str, Any]:
    """Run one drill; raises InputError when it would strand a record, FailoverError when
    the answers do not move (or come back) within `timeout`."""
    if region not in cfg.regions:
        raise InputError(f"unknown region '{region}' (regions: {', '.join(cfg.regions)})")
    now = time.time()
    left = stranded(cfg, state, {region}, now)
    if left:
        raise InputError(f"a drill of {region} would leave {', '.join(left)} with no healthy "
                         "region: refused")
    values = {ep.address for ep in cfg.regions[region].endpoints}
    keys = {(r.name, r.type) for r in cfg.records}
    before = _answers(adapter, keys)
    affected = {k for k, v in before.items() if v & values}
    if not affected:
        raise InputError(f"no record answers from {region} now: nothing to drill")
    kind: OverrideKind = "drain" if mode == "drain" else "fault"
    t0 = time.time()
    state.set_override(Override(kind, region, region, who(), "drill", t0))
    try:
        moved = _wait(adapter, affected, lambda v: bool(v) and not v & values, timeout, poll)
    finally:
        state.clear_override(kind, region)
    t1 = time.time()
    back = _wait(adapter, affected, lambda v: bool(v & values), timeout, poll)
    per_record = []
    for k in sorted(affected):
        subject = f"{k[0]} {k[1]}"
        decided = _first(state, t0, "decision", subject)
        written = _first(state, t0, "dns")
        per_record.append({
            "record": subject, "before": sorted(before[k]),
            "detection_s": None if decided is None else round(decided - t0, 3),
            "write_s": None if written is None else round(written - t0, 3),
            "served_s": round(moved[k] - t0, 3), "back_s": round(back[k] - t1, 3)})
    report = {"region": region, "mode": mode, "at": t0,
              "total_s": round(max(moved.values()) - t0, 3),
              "back_total_s": round(max(back.values()) - t1, 3), "records": per_record}
    state.record([Event(time.time(), "drill", region,
                        f"drill of {region} ({mode}): answers moved in {report['total_s']} s, "
                        f"back in {report['back_total_s']} s", report)])
    return report


def _wait(adapter: Adapter, keys: set[tuple[str, str]], done: Any, timeout: float,
          poll: float) -> dict[tuple[str, str], float]:
    reached: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout
    while len(reached) < len(keys):
        answers = _answers(adapter, keys - set(reached))
        now = time.time()
        for k, v in answers.items():
            if done(v):
                reached[k] = now
        if len(reached) < len(keys):
            if time.monotonic() > deadline:
                waiting = ", ".join(f"{n} {t}" for n, t in sorted(keys - set(reached)))
                raise FailoverError(f"drill: {waiting} did not move within {timeout:g} s "
                                    "(is the controller running?)")
            time.sleep(poll)
    return reached
