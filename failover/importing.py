"""`failover import`: a config written from a zone that already serves, so a team adopts
failover without changing one answer.

A source (a Route 53 hosted zone with its health checks, or an RFC 2136 zone read by
AXFR and split into regions by address range) is read into `Candidate`s: one per (name,
type), each with the values every region answers with. `assemble` turns them into a
config: the regions' endpoints (the most common values of each region; names that
answer otherwise get a pool of their own), check templates (one per distinct health
check settings), the records, and `ownership.adopt: true`, so that the first run writes
only the ownership markers of the names that already answer as the config says.
Whatever the config cannot express is returned as notes (the file's header comments),
never dropped silently.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from failover.config.fields import AWS_REGIONS, REGION_NAME
from failover.records import RecordSet, absolute_name, canonical_value

Progress = Callable[[int, int | None], None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ROUTE53_CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP")
OTHER_POLICIES = (("GeoLocation", "geolocation"), ("MultiValueAnswer", "multivalue answer"),
                  ("GeoProximityLocation", "geoproximity"), ("CidrRoutingConfig", "IP-based"))


@dataclass(frozen=True)
class Part:
    """What one region answers with for one name: its values and the Route 53 health
    check attached to them (None: unchecked)."""

    region: str
    values: tuple[str, ...]
    check: str | None = None


@dataclass
class Candidate:
    """One (name, type) to import, with its policy and each region's part."""

    name: str
    type: str
    ttl: int
    policy: str
    parts: list[Part]
    weights: dict[str, int] = field(default_factory=dict)


@dataclass
class Imported:
    """An imported config (data for YAML), what was left out or will differ, counts."""

    config: dict[str, Any]
    notes: list[str]
    records: int
    names: int


def name_filter(glob: str | None) -> Callable[[str], bool]:
    """Whether an absolute name matches `--names` (with or without its trailing dot)."""
    if not glob:
        return lambda _: True
    return lambda n: fnmatch.fnmatchcase(n, glob) or fnmatch.fnmatchcase(n.rstrip("."), glob)


# ---------------------------------------------------------------------------- Route 53

def from_route53(items: Sequence[dict[str, Any]], checks: dict[str, dict[str, Any]], *,
                 zone: str, provider: dict[str, Any], names: str | None = None,
                 policy: str | None = None, progress: Progress | None = None) -> Imported:
    """A config from a hosted zone's record sets (ListResourceRecordSets items) and its
    health checks (id -> HealthCheckConfig). `provider`: the provider block as far as
    the CLI knows it (type, hosted_zone_id, endpoint_url, profile); `policy` imports only
    the records of that routing policy."""
    notes: list[str] = []
    wanted = name_filter(names)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    other_types: Counter[str] = Counter()
    # a record set read twice (pages that overlap) counts once
    unique = {(i["Name"], i["Type"], i.get("SetIdentifier")): i for i in items}
    for item in unique.values():
        name = absolute_name(item["Name"].replace("\\052", "*"))
        rtype = item["Type"]
        if rtype not in ("A", "AAAA", "CNAME"):
            if not (rtype in ("SOA", "NS") and name == zone) and rtype != "TXT":
                other_types[rtype] += 1
            continue
        if not wanted(name):
            continue
        groups.setdefault((name, rtype), []).append(item)
    # where an address is served with a region (weighted, latency), to name the region
    # of a failover record set answering with it
    region_of: dict[str, set[str]] = {}
    for sets in groups.values():
        for item in sets:
            if "Region" in item or "Weight" in item:
                for v in _values(item):
                    region_of.setdefault(v, set()).add(item.get("SetIdentifier", ""))
    aws: dict[str, str] = {}  # region -> its AWS region (latency)
    cands: list[Candidate] = []
    for i, ((name, rtype), sets) in enumerate(sorted(groups.items())):
        if progress is not None and i % 100 == 0:
            progress(i, len(groups))
        where = f"{name} {rtype}"
        why = _route53_unfit(name, sets)
        if why:
            notes.append(f"{where}: {why}")
            continue
        kind = _route53_policy(sets[0])
        if policy is not None and kind != policy:
            notes.append(f"{where}: {kind} routing, not imported (--policy {policy})")
            continue
        cand, why = _route53_candidate(name, rtype, kind, sets, region_of, aws)
        if cand is None:
            notes.append(f"{where}: {why}")
            continue
        ttls = {int(s.get("TTL", 0)) for s in sets}
        if len(ttls) > 1:
            notes.append(f"{where}: record sets with TTLs {sorted(ttls)}: one TTL per record "
                         f"({cand.ttl} s); left alone by adopt until they agree")
        zero = [p.region for p in cand.parts if cand.weights.get(p.region) == 0]
        if kind == "weighted" and zero and len(zero) < len(cand.parts):
            notes.append(f"{where}: weight-0 record sets ({', '.join(zero)}) are written only "
                         "while every weighted region is out; left alone by adopt")
        if kind == "failover" and {s.get("SetIdentifier") for s in sets} - {"primary",
                                                                             "secondary"}:
            notes.append(f"{where}: failover SetIdentifiers "
                         f"{sorted(s.get('SetIdentifier', '') for s in sets)} are written as "
                         "primary/secondary; left alone by adopt (rename them to adopt it)")
        cands.append(cand)
    for rtype, n in sorted(other_types.items()):
        notes.append(f"{n} {rtype} record set(s): a type failover does not manage, left as is")
    templates, names_of = _templates(checks, {p.check for c in cands for p in c.parts
                                              if p.check}, notes)
    regions: dict[str, dict[str, Any]] = {r: {} for c in cands for r in
                                          (p.region for p in c.parts)}
    for r, a in aws.items():
        if not (r == a and a in AWS_REGIONS):
            regions[r]["aws_region"] = a
    ids: dict[str, str] = {}
    for c in cands:
        for p in c.parts:
            for v in p.values:
                if p.check is None:
                    continue
                if ids.setdefault(v, p.check) != p.check:
                    notes.append(f"{c.name} {c.type}: {v} has health check {p.check} here and "
                                 f"{ids[v]} elsewhere: one check per address is kept ({ids[v]})")
    provider = {**provider}
    if ids:
        provider["health_check_ids"] = dict(sorted(ids.items()))
    return assemble(cands, zone=zone, provider=provider, regions=regions,
                    templates=templates, check_names=names_of,
                    probe=_probe_targets(checks), notes=notes)


def _values(item: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted({canonical_value(item["Type"], r["Value"])
                         for r in item.get("ResourceRecords", [])}))


def _route53_policy(item: dict[str, Any]) -> str:
    if "Failover" in item:
        return "failover"
    if "Region" in item:
        return "latency"
    if "Weight" in item:
        return "weighted"
    return "simple"


def _route53_unfit(name: str, sets: list[dict[str, Any]]) -> str | None:
    """Why a (name, type)'s record sets cannot be imported (None: they can)."""
    if "*" in name:
        return "a wildcard name: not imported"
    for item in sets:
        if "AliasTarget" in item:
            target = item["AliasTarget"].get("DNSName", "?")
            return (f"alias record to {target}: aliases cannot be expressed, not imported "
                    "(Route 53 keeps serving it)")
        for key, what in OTHER_POLICIES:
            if key in item:
                return f"{what} routing cannot be expressed: not imported"
    kinds = {_route53_policy(i) for i in sets}
    if kinds == {"simple"}:
        return "simple routing (no regions to fail over between): not imported"
    if len(kinds) > 1:
        return f"mixes routing policies {sorted(kinds)}: not imported"
    return None


def _route53_candidate(name: str, rtype: str, kind: str, sets: list[dict[str, Any]],
                       region_of: dict[str, set[str]], aws: dict[str, str]
                       ) -> tuple[Candidate | None, str]:
    ttl = min(int(s.get("TTL", 0)) for s in sets)
    parts: list[Part] = []
    weights: dict[str, int] = {}
    if kind == "failover":
        by_role = {s["Failover"]: s for s in sets}
        for role in ("PRIMARY", "SECONDARY"):
            item = by_role.get(role)
            if item is None:
                continue
            values = _values(item)
            known = {r for v in values for r in region_of.get(v, set())}
            region = known.pop() if len(known) == 1 else item.get("SetIdentifier", role.lower())
            parts.append(Part(region, values, item.get("HealthCheckId")))
        if len({p.region for p in parts}) != len(parts):
            return None, f"PRIMARY and SECONDARY both in region {parts[0].region}: not imported"
    else:
        for item in sets:
            region = item.get("SetIdentifier", "")
            parts.append(Part(region, _values(item), item.get("HealthCheckId")))
            if kind == "weighted":
                weights[region] = int(item["Weight"])
            else:
                have = aws.setdefault(region, item["Region"])
                if have != item["Region"]:
                    return None, (f"SetIdentifier {region} is AWS region {item['Region']} here "
                                  f"and {have} elsewhere: one region, one AWS region; not "
                                  "imported")
    bad = [p.region for p in parts if not REGION_NAME.match(p.region)]
    if bad:
        return None, (f"SetIdentifier {bad[0]!r} is not a usable region name (letters, digits, "
                      "'.', '_', '-'): not imported")
    return Candidate(name, rtype, ttl, kind, parts, weights), ""


def _templates(checks: dict[str, dict[str, Any]], used: set[str | None], notes: list[str]
               ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """One check template per distinct settings among the health checks in use, and the
    template each health check id became."""
    templates: dict[str, dict[str, Any]] = {}
    by_settings: dict[tuple[Any, ...], str] = {}
    names_of: dict[str, str] = {}
    for hid in sorted(h for h in used if h):
        hc = checks.get(hid)
        if hc is None:
            notes.append(f"health check {hid} is attached but could not be read: its "
                         "endpoints are not checked")
            continue
        if hc.get("Type") not in ROUTE53_CHECK_TYPES:
            notes.append(f"health check {hid} ({hc.get('Type')}) cannot be expressed as a "
                         "check template: its endpoints are not checked by failover (it stays "
                         "attached in Route 53)")
            continue
        tmpl = _template(hc)
        key = tuple(sorted(tmpl.items()))
        if key not in by_settings:
            base = f"{hc['Type'].lower().replace('_', '-')}-{tmpl.get('port', '')}".rstrip("-")
            tname, n = base, 1
            while tname in templates:
                n += 1
                tname = f"{base}-{n}"
            by_settings[key] = tname
            templates[tname] = tmpl
        names_of[hid] = by_settings[key]
    return templates, names_of


def _template(hc: dict[str, Any]) -> dict[str, Any]:
    """A check template from a HealthCheckConfig (Route 53's defaults made explicit)."""
    t: dict[str, Any] = {"type": hc["Type"]}
    if hc.get("Port") is not None:
        t["port"] = int(hc["Port"])
    if hc["Type"] != "TCP":
        t["resource_path"] = hc.get("ResourcePath") or "/"
    if hc.get("SearchString"):
        t["search_string"] = hc["SearchString"]
    t["request_interval"] = int(hc.get("RequestInterval", 30))
    t["failure_threshold"] = int(hc.get("FailureThreshold", 3))
    for key, name in (("Inverted", "inverted"), ("Disabled", "disabled"),
                      ("MeasureLatency", "measure_latency")):
        if hc.get(key):
            t[name] = True
    if hc["Type"].startswith("HTTPS") and hc.get("EnableSNI") is False:
        t["enable_sni"] = False
    return t


def _probe_targets(checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per health check id, what an endpoint probed by it sets (ip, fqdn)."""
    out: dict[str, dict[str, Any]] = {}
    for hid, hc in checks.items():
        extra: dict[str, Any] = {}
        if hc.get("IPAddress"):
            extra["ip"] = hc["IPAddress"]
        if hc.get("FullyQualifiedDomainName"):
            extra["fqdn"] = hc["FullyQualifiedDomainName"].rstrip(".")
        out[hid] = extra
    return out


# ----------------------------------------------------------------------------- RFC 2136

def from_rfc2136(listing: Iterable[RecordSet], *, zone: str, provider: dict[str, Any],
                 ranges: Sequence[tuple[str, Network]], names: str | None = None,
                 policy: str | None = None, progress: Progress | None = None) -> Imported:
    """A config from a zone's A/AAAA/CNAME record sets (an AXFR): a name whose addresses
    all fall in the `ranges` (region, network; in the order given) becomes a record;
    names in several regions get `policy` (default failover, in that order)."""
    notes: list[str] = []
    wanted = name_filter(names)
    order = list(dict.fromkeys(r for r, _ in ranges))
    chosen = policy or "failover"
    cands: list[Candidate] = []
    sets = sorted((rs for rs in listing if rs.type in ("A", "AAAA", "CNAME")),
                  key=lambda rs: rs.sort_key)
    for i, rs in enumerate(sets):
        if progress is not None and i % 100 == 0:
            progress(i, len(sets))
        if not wanted(rs.name):
            continue
        where = f"{rs.name} {rs.type}"
        if rs.type == "CNAME":
            notes.append(f"{where}: CNAME to {rs.values[0]}: not imported (its target "
                         "belongs to no region by address)")
            continue
        if "*" in rs.name:
            notes.append(f"{where}: a wildcard name: not imported")
            continue
        by_region: dict[str, list[str]] = {}
        outside = []
        for v in rs.values:
            addr = ipaddress.ip_address(v)
            region = next((r for r, net in ranges if addr in net), None)
            if region is None:
                outside.append(v)
            else:
                by_region.setdefault(region, []).append(v)
        if outside:
            notes.append(f"{where}: {', '.join(outside)} in no --region range: not imported")
            continue
        regions = [r for r in order if r in by_region]
        parts = [Part(r, tuple(by_region[r])) for r in regions]
        cand = Candidate(rs.name, rs.type, rs.ttl, chosen, parts,
                         {r: 1 for r in regions} if chosen == "weighted" else {})
        if len(regions) > 1 and chosen != "weighted":
            notes.append(f"{where}: answers from {' and '.join(regions)} today; {chosen} "
                         f"answers from one region: left alone by adopt (--policy weighted "
                         "keeps today's answer)")
        cands.append(cand)
    notes.append("no health checks are imported from an RFC 2136 zone: add check templates "
                 "(checks:) and name them on the endpoints")
    return assemble(cands, zone=zone, provider=provider,
                    regions={r: {} for r in order}, templates={}, check_names={}, probe={},
                    notes=notes)


# ---------------------------------------------------------------------------- assemble

def assemble(cands: Sequence[Candidate], *, zone: str, provider: dict[str, Any],
             regions: dict[str, dict[str, Any]], templates: dict[str, dict[str, Any]],
             check_names: dict[str, str], probe: dict[str, dict[str, Any]],
             notes: list[str]) -> Imported:
    """The config for the candidates: each region's endpoints are the values most names
    answer with there (per type); a name that answers otherwise gets a pool."""
    common: dict[tuple[str, str], Counter[tuple[tuple[str, ...], str | None]]] = {}
    for c in cands:
        for p in c.parts:
            common.setdefault((p.region, c.type), Counter())[(p.values, p.check)] += 1
    default = {k: n.most_common(1)[0][0] for k, n in common.items()}

    def endpoints(part: Part) -> list[dict[str, Any]]:
        out = []
        for v in part.values:
            ep: dict[str, Any] = {"address": v.rstrip(".") if v.endswith(".") else v}
            tmpl = check_names.get(part.check or "")
            if tmpl:
                ep["check"] = tmpl
                extra = probe.get(part.check or "", {})
                if extra.get("ip") and extra["ip"] != v:
                    ep["ip"] = extra["ip"]
                if extra.get("fqdn"):
                    ep["fqdn"] = extra["fqdn"]
            out.append(ep)
        return out

    for (region, _), (values, check) in sorted(default.items()):
        regions.setdefault(region, {}).setdefault("endpoints", []).extend(
            endpoints(Part(region, values, check)))
    for spec in regions.values():
        spec.setdefault("endpoints", [])
    pools: dict[str, dict[str, list[dict[str, Any]]]] = {}
    pool_of: dict[tuple[Any, ...], str] = {}
    records = []
    for c in cands:
        rec: dict[str, Any] = {"name": c.name, "type": c.type, "ttl": c.ttl, "policy": c.policy}
        if c.policy == "failover":
            rec["order"] = [p.region for p in c.parts]
        elif c.policy == "weighted":
            rec["weights"] = {p.region: c.weights.get(p.region, 1) for p in c.parts}
        else:
            rec["regions"] = [p.region for p in c.parts]
        if any(default[(p.region, c.type)] != (p.values, p.check) for p in c.parts):
            key = (c.type, *((p.region, p.values, p.check) for p in c.parts))
            if key not in pool_of:
                pool_of[key] = _pool_name(c.name, zone, pools)
                pools[pool_of[key]] = {p.region: endpoints(p) for p in c.parts}
            rec["pool"] = pool_of[key]
        records.append(rec)
    config: dict[str, Any] = {"zone": zone, "provider": provider,
                              "ownership": {"adopt": True}}
    if templates:
        config["checks"] = templates
    config["regions"] = regions
    if pools:
        config["pools"] = pools
    config["records"] = records
    return Imported(config, notes, len(records), len({c.name for c in cands}))


def _pool_name(name: str, zone: str, taken: dict[str, Any]) -> str:
    """A pool named for the first name that uses it (its labels below the zone)."""
    label = name[:-len(zone)].rstrip(".") if name.endswith("." + zone) else name.rstrip(".")
    base = re.sub(r"[^A-Za-z0-9._-]", "-", label or "apex").lstrip("._-")[:56] or "pool"
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{base}-{n}"
    return out


# ---------------------------------------------------------------------------- render

def render(imported: Imported, source: str) -> str:
    """The config as YAML, its header comments saying where it came from, what adopting
    it does, and every note."""
    import yaml

    head = [f"failover config imported by `failover import` from {source}",
            f"{imported.records} record(s) on {imported.names} name(s).",
            "ownership.adopt: true: the first `failover run` writes only",
            "the ownership markers of names that already answer as below; a name that",
            "would answer otherwise is left alone, and `failover plan` says why."]
    if imported.notes:
        head += ["", f"Not imported, or left alone by adopt ({len(imported.notes)}):"]
        head += [f"  {n}" for n in imported.notes]
    body = yaml.safe_dump(imported.config, sort_keys=False, default_flow_style=False,
                          width=100, allow_unicode=True)
    return "".join(f"# {line}".rstrip() + "\n" for line in head) + "\n" + body
