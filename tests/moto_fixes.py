"""Route 53 record-set semantics that moto gets wrong, fixed for our tests.

moto 5 (a) deletes a record set by SetIdentifier across *every* name of the zone, and
(b) refuses to CREATE a record set again once an identical CREATE is in its journal.
Route 53 scopes SetIdentifier to a name and type and allows both. `install()` replaces
moto's change handler with one that follows Route 53: changes apply in order, CREATE
fails when the record set exists, DELETE when it does not match exactly.
Run as a script, it starts moto_server with the fix: `python tests/moto_fixes.py -H ...`.
With MOTO_THROTTLE_EVERY=N set, every Nth ChangeResourceRecordSets call after the first
answers Throttling, as Route 53 does under load (fault tests).
"""

from __future__ import annotations

import copy
import itertools
import os
import sys
from typing import Any


def install() -> None:
    from moto.route53 import models
    from moto.route53.exceptions import ResourceRecordAlreadyExists, Route53ClientError

    def invalid(message: str) -> Exception:
        return Route53ClientError("InvalidChangeBatch", message)

    def key(rs: Any) -> tuple[str, str, Any]:
        if isinstance(rs, dict):
            return (rs["Name"].rstrip(".") + ".", rs["Type"], rs.get("SetIdentifier"))
        return (rs.name.rstrip(".") + ".", rs.type, rs.set_identifier)

    every = int(os.environ.get("MOTO_THROTTLE_EVERY", "0"))
    calls = itertools.count()

    def change_resource_record_sets(self: Any, zoneid: str, change_list: list[Any]) -> None:
        n = next(calls)
        if every and n % every == every - 1:
            raise Route53ClientError("Throttling", "Rate exceeded")
        zone = self.get_hosted_zone(zoneid)
        state = {key(r): r for r in zone.rrsets}
        for change in change_list:  # validate the whole batch first, in order
            rs, action = change["ResourceRecordSet"], change["Action"]
            k = key(rs)
            if action == "CREATE" and k in state:
                raise ResourceRecordAlreadyExists(name=k[0], _type=k[1])
            if action == "DELETE":
                have = state.get(k)
                values = sorted(r["Value"] for r in rs.get("ResourceRecords", []))
                if have is None:
                    raise invalid(f"Tried to delete resource record set [name='{k[0]}', "
                                             f"type='{k[1]}'] but it was not found")
                if sorted(getattr(have, "records", None) or []) != values or (
                        have.ttl is not None and int(have.ttl) != int(rs.get("TTL", 0))):
                    raise invalid(f"Tried to delete resource record set [name='{k[0]}', "
                                             f"type='{k[1]}'] but the values provided do not "
                                             "match the current values")
                del state[k]
            else:
                state[k] = rs
        # the batch is valid: the zone becomes `state` (one pass, not one per change)
        touched = {key(c["ResourceRecordSet"]) for c in change_list}
        zone.rrsets = [r for r in zone.rrsets if key(r) not in touched]
        for k in touched:
            if k in state:
                rs = copy.deepcopy(state[k])
                rs["Name"] = k[0]
                rs["ResourceRecords"] = [r["Value"] for r in rs.get("ResourceRecords", [])]
                zone.add_rrset(rs)
        zone.rr_changes.extend(copy.deepcopy(change_list))

    models.Route53Backend.change_resource_record_sets = change_resource_record_sets


if __name__ == "__main__":
    install()
    from moto.server import main

    main(sys.argv[1:])
