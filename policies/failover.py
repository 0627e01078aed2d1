"""Failover routing: the first tier with a usable region answers, with a failback delay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.model import HEALTH_BASES, Choice, Decision, RegionView
from policies.reasons import clock, describe, serve


def choose_failover(tiers: Sequence[Sequence[str]], views: Mapping[str, RegionView],
                    failback_delay: float, previous: Decision | None, now: float) -> Choice | None:
    """The first tier with a usable region; None when no tier has one.

    A recovered higher tier takes over only after it has been healthy for
    `failback_delay` seconds, while the tier now answering stays usable.
    """
    best, live = _first_live(tiers, views)
    if best is None:
        return None
    held = _failback_hold(tiers, views, failback_delay, previous, now, best, live)
    if held is not None:
        return held
    shares = {r: 1 / len(live) for r in live}
    if best == 0:
        why = "first tier healthy" if len(tiers) > 1 else "healthy"
    else:
        why = "; ".join(describe(views[r]) for tier in tiers[:best] for r in tier)
    return Choice(tuple(live), shares, serve(live, why), tier=best)


def _first_live(tiers: Sequence[Sequence[str]],
                views: Mapping[str, RegionView]) -> tuple[int | None, list[str]]:
    for idx, tier in enumerate(tiers):
        live = [r for r in tier if views[r].usable]
        if live:
            return idx, live
    return None, []


def _failback_hold(tiers: Sequence[Sequence[str]], views: Mapping[str, RegionView],
                   failback_delay: float, previous: Decision | None, now: float,
                   best: int, live: list[str]) -> Choice | None:
    if (failback_delay <= 0 or previous is None or previous.tier is None
            or previous.basis not in HEALTH_BASES or not best < previous.tier < len(tiers)):
        return None
    held = [r for r in tiers[previous.tier] if views[r].usable]
    known = [views[r].since for r in live if views[r].since is not None]
    if not held or len(known) < len(live):
        return None  # a region healthy since start has been healthy long enough
    recovered_at = min(s for s in known if s is not None)
    remaining = failback_delay - (now - recovered_at)
    if remaining <= 0:
        return None
    why = (f"failback to {', '.join(live)} in {remaining:.0f} s "
           f"(healthy since {clock(recovered_at)}, failback delay {failback_delay:g} s)")
    return Choice(tuple(held), {r: 1 / len(held) for r in held}, serve(held, why),
                  basis="hold", tier=previous.tier)
