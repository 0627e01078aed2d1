"""Weighted routing: usable regions share traffic by weight, as Route 53 weighted records do."""

from __future__ import annotations

from collections.abc import Mapping

from policies.model import Choice, RegionView
from policies.reasons import describe, serve, shares_text


def choose_weighted(weights: Mapping[str, int], views: Mapping[str, RegionView]) -> Choice | None:
    """Usable regions with their traffic shares; None when no region is usable.

    Regions with weight 0 answer only when every region with a non-zero weight is
    unusable; when all weights are 0, usable regions split traffic equally.
    """
    live = [r for r in weights if views[r].usable]
    if not live:
        return None
    weighted = [r for r in live if weights[r] > 0]
    if weighted:
        total = sum(weights[r] for r in weighted)
        shares = {r: weights[r] / total for r in weighted}
        why = f"weights {shares_text(shares)}"
    else:
        shares = {r: 1 / len(live) for r in live}
        if any(w > 0 for w in weights.values()):
            why = f"every weighted region is out, zero-weight regions split equally ({shares_text(shares)})"
        else:
            why = f"all weights are 0: equal split ({shares_text(shares)})"
    out = [describe(views[r]) for r in weights if not views[r].usable]
    if out:
        why += "; " + "; ".join(out)
    return Choice(tuple(shares), shares, serve(shares, why))
