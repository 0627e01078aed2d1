"""Route 53's shapes of record sets, and change batches within its limits.

What the API takes and gives for a RecordSet (routing attributes, geolocation), how many
elements and characters a change costs, batches that stay under 1,000 elements and
32,000 characters with a name's changes together, and the checks Route 53 would make of
a zone's routing record sets before any call. Pure: no client, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from failover.config import AWS_REGIONS
from failover.config.networks import CONTINENTS
from failover.plan import Change, ManagedKey
from failover.records import RecordSet

MAX_ELEMENTS = 1000
MAX_CHARS = 32000
MAX_VALUE = 4000
READ_TYPES = ("A", "AAAA", "CNAME", "TXT")
GEO_KEYS = ("ContinentCode", "CountryCode", "SubdivisionCode")


def _elements(rs: RecordSet) -> int:
    return max(1, len(rs.values))


def _chars(rs: RecordSet) -> int:
    return sum(len(v) for v in rs.values)


def _from_api(item: dict[str, Any]) -> RecordSet | None:
    rtype = item["Type"]
    if rtype not in READ_TYPES or "AliasTarget" in item:
        return None
    name = item["Name"].replace("\\052", "*")
    values = [r["Value"] for r in item.get("ResourceRecords", [])]
    return RecordSet.make(name, rtype, int(item.get("TTL", 0)), values,
                          set_identifier=item.get("SetIdentifier"), weight=item.get("Weight"),
                          region=item.get("Region"), failover=item.get("Failover"),
                          health_check_id=item.get("HealthCheckId"),
                          geo=_geo_from_api(item.get("GeoLocation")))


def _geo_from_api(loc: dict[str, Any] | None) -> tuple[tuple[str, str], ...] | None:
    """A GeoLocation as the ledger spells it: its location keys alone, sorted, upper
    case, so a record set read back compares equal to the one written."""
    if not loc:
        return None
    pairs = tuple((k, str(loc[k]).strip().upper()) for k in GEO_KEYS if loc.get(k))
    return pairs or None


def _to_api(rs: RecordSet) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": rs.name, "Type": rs.type, "TTL": rs.ttl,
                           "ResourceRecords": [{"Value": v} for v in rs.values]}
    for attr, key in (("set_identifier", "SetIdentifier"), ("weight", "Weight"),
                      ("region", "Region"), ("failover", "Failover"),
                      ("health_check_id", "HealthCheckId")):
        val = getattr(rs, attr)
        if val is not None:
            out[key] = val
    if rs.geo is not None:
        out["GeoLocation"] = dict(rs.geo)
    return out


def _api(change: Change, upsert: bool = False) -> list[dict[str, Any]]:
    """A change as Route 53 actions: a replacement is DELETE of the exact values read
    + CREATE (refused if the record set changed meanwhile); with `upsert`, creates and
    replacements are UPSERT."""
    if change.action == "create":
        return [{"Action": "UPSERT" if upsert else "CREATE",
                 "ResourceRecordSet": _to_api(change.record)}]
    if change.action == "delete":
        return [{"Action": "DELETE", "ResourceRecordSet": _to_api(change.record)}]
    assert change.before is not None
    if upsert:
        return [{"Action": "UPSERT", "ResourceRecordSet": _to_api(change.record)}]
    return [{"Action": "DELETE", "ResourceRecordSet": _to_api(change.before)},
            {"Action": "CREATE", "ResourceRecordSet": _to_api(change.record)}]


def _cost(change: Change, upsert: bool = False) -> tuple[int, int]:
    """(ResourceRecord elements, characters) a change adds to a batch; Route 53 counts
    an UPSERT's elements twice."""
    if upsert and change.action != "delete":
        return 2 * _elements(change.record), 2 * _chars(change.record)
    sets = [change.record] + ([change.before] if change.before is not None else [])
    return sum(_elements(s) for s in sets), sum(_chars(s) for s in sets)


def batches(changes: Sequence[Change], fenced: bool = False,
            upsert: bool = False) -> list[list[Change]]:
    """Pack changes into the fewest batches within Route 53's limits (less a fleet
    leader's fence, two elements and their characters, when `fenced`).

    The changes of one (name, type) stay together (a name is never left half-changed
    between batches), in the plan's order: deletes, then replacements, then creates.
    """
    groups: dict[tuple[str, str], list[Change]] = {}
    for c in changes:
        groups.setdefault((c.record.name, c.record.type), []).append(c)
    out: list[list[Change]] = []
    current: list[Change] = []
    elements = chars = 0
    # the fence: DELETE and CREATE (UPSERT, counted twice, with `upsert`)
    max_elements = MAX_ELEMENTS - ((3 if upsert else 2) if fenced else 0)
    max_chars = MAX_CHARS - (512 if fenced else 0)
    for group in groups.values():
        g_el = sum(_cost(c, upsert)[0] for c in group)
        g_ch = sum(_cost(c, upsert)[1] for c in group)
        if current and (elements + g_el > max_elements or chars + g_ch > max_chars):
            out.append(current)
            current, elements, chars = [], 0, 0
        current.extend(group)
        elements += g_el
        chars += g_ch
    if current:
        out.append(current)
    return out


def validate(after: Iterable[RecordSet], keys: Collection[ManagedKey]) -> list[str]:
    """What Route 53 would reject in the record sets of `keys` (moto accepts much of it).

    A name's geolocation record sets without the `*` location are not refused: clients
    of no listed location then get no answer, which is what a default network failing
    closed asks for.
    """
    problems = []
    by_key: dict[tuple[str, str], list[RecordSet]] = {}
    for rs in after:
        if (rs.name, rs.type) in keys:
            by_key.setdefault((rs.name, rs.type), []).append(rs)
    for (name, rtype), sets in sorted(by_key.items()):
        where = f"{name} {rtype}"
        kinds = {_kind(rs) for rs in sets}
        if len(kinds) > 1:
            problems.append(f"{where}: mixes routing policies {sorted(kinds)}")
        ids = [rs.set_identifier for rs in sets]
        if kinds != {"simple"} and (None in ids or len(set(ids)) != len(ids)):
            problems.append(f"{where}: every routing record needs a unique SetIdentifier")
        if kinds == {"simple"} and len(sets) > 1:
            problems.append(f"{where}: more than one simple record set")
        roles = [rs.failover for rs in sets if rs.failover]
        if roles.count("PRIMARY") > 1 or roles.count("SECONDARY") > 1:
            problems.append(f"{where}: at most one PRIMARY and one SECONDARY")
        places = [rs.geo for rs in sets if rs.geo is not None]
        if len(set(places)) != len(places):
            problems.append(f"{where}: two geolocation record sets for one location")
        for rs in sets:
            if len(_policies(rs)) > 1:
                problems.append(f"{where} {rs.set_identifier}: one record set holds one "
                                f"routing policy, not {' and '.join(_policies(rs))}")
            if rs.geo is not None and (why := _bad_location(rs.geo)):
                problems.append(f"{where} {rs.set_identifier}: {why}")
            if rs.weight is not None and not 0 <= rs.weight <= 255:
                problems.append(f"{where} {rs.set_identifier}: weight {rs.weight} outside 0-255")
            if rs.region is not None and rs.region not in AWS_REGIONS:
                problems.append(f"{where} {rs.set_identifier}: '{rs.region}' is not an AWS region")
            if not 0 <= rs.ttl <= 2147483647:
                problems.append(f"{where}: TTL {rs.ttl} outside 0-2147483647")
            if not rs.values:
                problems.append(f"{where}: a record set needs at least one value")
            if any(len(v) > MAX_VALUE for v in rs.values):
                problems.append(f"{where}: a value longer than {MAX_VALUE} characters")
            if rtype == "CNAME" and len(rs.values) > 1:
                problems.append(f"{where}: a CNAME holds one value")
    return problems


def _bad_location(geo: tuple[tuple[str, str], ...]) -> str | None:
    """Why Route 53 would refuse a GeoLocation (None: it would take it)."""
    loc = dict(geo)
    if set(loc) - set(GEO_KEYS) or len(loc) != len(geo):
        return f"a location holds {', '.join(GEO_KEYS)}, once each"
    if "ContinentCode" in loc:
        if len(loc) > 1:
            return "a location is a continent or a country, not both"
        if loc["ContinentCode"] not in CONTINENTS:
            return f"'{loc['ContinentCode']}' is not a continent ({', '.join(CONTINENTS)})"
        return None
    if "CountryCode" not in loc:
        return ("a subdivision needs its country" if loc
                else "a location needs a continent or a country")
    if loc["CountryCode"] == "*" and len(loc) > 1:
        return "the default location (*) has no subdivision"
    return None


def _policies(rs: RecordSet) -> list[str]:
    """The routing policies a record set's attributes ask for (none: simple)."""
    return [kind for kind, given in (("geolocation", rs.geo is not None),
                                     ("failover", bool(rs.failover)),
                                     ("weighted", rs.weight is not None),
                                     ("latency", bool(rs.region))) if given]


def _kind(rs: RecordSet) -> str:
    return next(iter(_policies(rs)), "simple")
