"""Latency routing: the usable region with the lowest measured latency, with hysteresis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.model import HEALTH_BASES, Choice, Decision, RegionView
from policies.reasons import describe, serve


def choose_latency(regions: Sequence[str], views: Mapping[str, RegionView],
                   hysteresis_percent: float, previous: Decision | None,
                   hysteresis_ms: float = 0.0, *, min_hold: float = 0.0,
                   now: float = 0.0) -> Choice | None:
    """The usable region with the lowest latency; None when no region is usable.

    Regions without a measurement rank after measured ones, then in config order. The
    region answering now keeps answering unless another is faster by more than
    `hysteresis_percent` and by more than `hysteresis_ms`, so that noise (relative at
    high latencies, absolute at low ones) does not move traffic back and forth; and once
    it moved, it stays `min_hold` seconds (the record's TTL by default) before it moves
    again for latency (never against health: an unusable region is left at once).
    """
    live = [r for r in regions if views[r].usable]
    if not live:
        return None
    order = {r: i for i, r in enumerate(regions)}

    def rank(r: str) -> tuple[bool, float, int]:
        lat = views[r].latency_ms
        return (lat is None, lat or 0.0, order[r])

    best = min(live, key=rank)
    others = [describe(views[r]) for r in regions if not views[r].usable]
    suffix = ("; " + "; ".join(others)) if others else ""
    current = previous.regions[0] if previous and previous.regions else None
    if (previous is not None and previous.basis in HEALTH_BASES and current in live
            and current != best):
        cur_ms, best_ms = views[current].latency_ms, views[best].latency_ms
        if (cur_ms is not None and best_ms is not None
                and (best_ms >= cur_ms * (1 - hysteresis_percent / 100)
                     or cur_ms - best_ms <= hysteresis_ms)):
            why = (f"{cur_ms:.1f} ms, within {hysteresis_percent:g}% or {hysteresis_ms:g} ms of "
                   f"{best} at {best_ms:.1f} ms (hysteresis)")
            return Choice((current,), {current: 1.0}, serve([current], why + suffix), basis="hold")
        changed = previous.changed_at if previous.changed_at is not None else previous.at
        if cur_ms is not None and best_ms is not None and now - changed < min_hold:
            why = (f"{cur_ms:.1f} ms; {best} is faster at {best_ms:.1f} ms, but the answer "
                   f"changed {now - changed:.0f} s ago and is held {min_hold:g} s "
                   "(latency_min_hold)")
            return Choice((current,), {current: 1.0}, serve([current], why + suffix),
                          basis="hold", hold_until=changed + min_hold)
    best_ms = views[best].latency_ms
    if best_ms is None and previous is not None and current in live:
        # nothing measured (a plan without the controller's measurements): keep the
        # answer there is rather than move it to the config's first region
        why = "no latency measured, keeping the current answer"
        return Choice((current,), {current: 1.0}, serve([current], why + suffix))
    if best_ms is None:
        why = "no latency measured yet, first healthy region in order"
    else:
        rest = ", ".join(f"{r} {views[r].latency_ms:.1f} ms" for r in live
                         if r != best and views[r].latency_ms is not None)
        why = f"lowest latency {best_ms:.1f} ms" + (f" ({rest})" if rest else "")
    return Choice((best,), {best: 1.0}, serve([best], why + suffix))
