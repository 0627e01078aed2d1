"""The policy engine: pure functions from (record, health, overrides) to a Decision.

No I/O and no clock: time comes in as `now`, memory as the previous Decision.
"""

from policies.decide import decide, decide_all, desired_records, region_views
from policies.model import Basis, Choice, Decision, DecisionKey, Overrides, RegionView

__all__ = ["Basis", "Choice", "Decision", "DecisionKey", "Overrides", "RegionView", "decide", "decide_all",
           "desired_records", "region_views"]
