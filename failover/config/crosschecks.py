"""Checks that look across sections of a config, once its structure is sound.

A record naming an unknown region, duplicate records, a provider that cannot express a
policy, a calculated check without children: each yields (field path, message).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from failover.config.fields import AWS_REGIONS, HTTP_TYPES, STR_MATCH_TYPES, TLS_TYPES
from failover.config.models import CheckTemplate, Config, Endpoint, Record
from failover.config.networks import network_checks
from failover.config.notify import notify_checks
from failover.config.settings import BindProvider, ZonefileProvider, loopback_url

Issue = tuple[tuple[str | int, ...], str]


def cross_checks(cfg: Config) -> Iterator[Issue]:
    yield from _check_zones(cfg)
    yield from _check_provider(cfg)
    yield from _check_templates(cfg)
    yield from _check_regions(cfg)
    yield from _check_records(cfg)
    yield from network_checks(cfg)
    yield from notify_checks(cfg)


def _check_zones(cfg: Config) -> Iterator[Issue]:
    given = cfg.model_fields_set
    if cfg.zones is None:
        if "zone" not in given:
            yield (("zone",), "required field is missing (or list several under zones:)")
        return
    if "zone" in given or "provider" in given:
        field = "zone" if "zone" in given else "provider"
        yield ((field,), f"give either zone and provider (one zone) or zones (several), "
                         f"not both: move {field} into zones")
    seen: dict[str, int] = {}
    for i, z in enumerate(cfg.zones):
        if z.zone in seen:
            yield (("zones", i, "zone"), f"zone {z.zone} is also zones[{seen[z.zone]}]")
        seen.setdefault(z.zone, i)


def _check_provider(cfg: Config) -> Iterator[Issue]:
    places: list[tuple[tuple[str | int, ...], Any]] = [(("provider",), cfg.provider)]
    if cfg.zones:
        places = [(("zones", i, "provider"), z.provider) for i, z in enumerate(cfg.zones)]
    for at, prov in places:
        if isinstance(prov, BindProvider) and prov.tsig is not None:
            key = prov.tsig
            if key.secret is not None:
                yield ((*at, "tsig", "secret"),
                       "inline secrets are not allowed: use secret_env or secret_file")
            elif bool(key.secret_env) == bool(key.secret_file):
                yield ((*at, "tsig"), "give exactly one of secret_env or secret_file")
    c = cfg.controller
    if c.token_env and c.token_file:
        yield (("controller", "token_env"), "give at most one of token_env or token_file")
    if c.cluster is not None:
        e = c.cluster.etcd
        at = ("controller", "cluster", "etcd")
        if e.password_env and e.password_file:
            yield ((*at, "password_env"), "give at most one of password_env or password_file")
        if e.user and not (e.password_env or e.password_file):
            yield ((*at, "user"), "etcd auth needs password_env or password_file")
        for i, url in enumerate(e.endpoints):
            if e.user and url.startswith("http://") and not loopback_url(url):
                yield ((*at, "endpoints", i), f"{url}: with user, the etcd password would "
                       "cross the network unencrypted over http://; use https:// (with "
                       "ca_file), or an etcd member on loopback")
        if c.cluster.vantages is None:
            yield (("controller", "cluster", "vantages"), "required for a fleet: list every "
                   "instance's vantage (its vantage, or its host name), such as [us-east-1, "
                   "eu-west-1, ap-south-1]; only their views count, so a vantage added in etcd "
                   "by someone else does not vote (docs/ha.md)")
        if bool(e.cert_file) != bool(e.key_file):
            yield ((*at, "cert_file"), "give cert_file and key_file together")
        if (e.cert_file or e.ca_file) and not all(u.startswith("https") for u in e.endpoints):
            yield ((*at, "endpoints"), "TLS files are given but an endpoint is http://")
        for at_p, prov in places:
            if isinstance(prov, ZonefileProvider):
                yield (at_p, "a fleet (controller.cluster) cannot write a zone file: one "
                       "file on one host cannot be fenced against a deposed leader; use "
                       "rfc2136 (the same zone, updated by UPDATE) or route53")


def _check_templates(cfg: Config) -> Iterator[Issue]:
    for name, t in cfg.checks.items():
        at: tuple[str | int, ...] = ("checks", name)
        http = t.type in HTTP_TYPES
        if t.type in STR_MATCH_TYPES and not t.search_string:
            yield ((*at, "search_string"), f"{t.type} needs a search_string")
        if t.search_string is not None and t.type not in STR_MATCH_TYPES:
            yield ((*at, "search_string"),
                   "search_string applies only to HTTP_STR_MATCH and HTTPS_STR_MATCH checks")
        if t.resource_path is not None:
            if not http:
                yield ((*at, "resource_path"), f"resource_path does not apply to {t.type} checks")
            elif not re.fullmatch(r"/[\x21-\x7e]{0,254}", t.resource_path):
                yield ((*at, "resource_path"), "must start with '/' and be at most 255 printable "
                                               "characters without spaces")
        if t.ca_file is not None:
            yield from _check_ca_file(cfg, at, t)
        if t.type == "CALCULATED":
            yield from _check_calculated(cfg, name, t)
        elif t.child_checks is not None or t.health_threshold is not None:
            yield ((*at, "child_checks" if t.child_checks is not None else "health_threshold"),
                   "child_checks and health_threshold apply only to CALCULATED checks")


def _check_ca_file(cfg: Config, at: tuple[str | int, ...], t: CheckTemplate) -> Iterator[Issue]:
    """An internal CA for HTTPS checks: a PEM file the probes can load (a file they
    cannot read would fail every probe of the check, and fail the region over)."""
    import ssl

    if t.type not in TLS_TYPES:
        yield ((*at, "ca_file"), "ca_file applies only to HTTPS and HTTPS_STR_MATCH checks")
        return
    path = cfg.path(t.ca_file or "")
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError:  # an OSError too: first
        yield ((*at, "ca_file"), f"{path} holds no PEM certificate")
    except OSError as exc:
        yield ((*at, "ca_file"), f"cannot read {path}: {exc.strerror or exc}")


def _check_calculated(cfg: Config, name: str, t: CheckTemplate) -> Iterator[Issue]:
    at: tuple[str | int, ...] = ("checks", name)
    if not t.child_checks:
        yield ((*at, "child_checks"), "a CALCULATED check needs at least one child check")
        return
    for i, child in enumerate(t.child_checks):
        if child not in cfg.checks:
            yield ((*at, "child_checks", i),
                   f"no check template '{child}'" + suggest(child, list(cfg.checks)))
    # a cycle would make health undefined
    seen: set[str] = set()
    stack = [name]
    while stack:
        cur = stack.pop()
        tmpl = cfg.checks.get(cur)
        for child in (tmpl.child_checks or []) if tmpl else []:
            if child == name:
                yield ((*at, "child_checks"), f"check '{name}' depends on itself")
                return
            if child not in seen:
                seen.add(child)
                stack.append(child)


def _check_regions(cfg: Config) -> Iterator[Issue]:
    groups: list[tuple[tuple[str | int, ...], str, list[Endpoint]]] = [
        (("regions", rname, "endpoints"), rname, region.endpoints)
        for rname, region in cfg.regions.items()]
    for pname, regions in cfg.pools.items():
        for rname, eps in regions.items():
            if rname not in cfg.regions:
                yield (("pools", pname, rname), f"unknown region '{rname}' (regions: "
                       f"{', '.join(cfg.regions)})" + suggest(rname, list(cfg.regions)))
            groups.append((("pools", pname, rname), rname, eps))
    for base, rname, eps in groups:
        labels: dict[str, int] = {}
        for i, ep in enumerate(eps):
            at: tuple[str | int, ...] = (*base, i)
            if ep.label in labels:
                yield ((*at, "name" if ep.name else "address"),
                       f"endpoint '{ep.label}' appears twice in region {rname} "
                       f"(also endpoints[{labels[ep.label]}]); give each a distinct name")
            labels.setdefault(ep.label, i)
            if ep.check is None:
                continue
            tmpl = cfg.checks.get(ep.check)
            if tmpl is None:
                known = ", ".join(sorted(cfg.checks)) or "none defined"
                yield ((*at, "check"), f"no check template '{ep.check}' (templates: {known})"
                       + suggest(ep.check, list(cfg.checks)))
                continue
            for t in _leaf_templates(cfg, tmpl):
                if t.type == "TCP" and t.port is None and ep.port is None:
                    yield ((*at, "port"), f"check '{ep.check}' is TCP: give a port here or "
                                          "in the template")
                    break
    for rname, region in cfg.regions.items():
        if region.aws_region is not None and region.aws_region not in AWS_REGIONS:
            yield (("regions", rname, "aws_region"),
                   f"'{region.aws_region}' is not an AWS region"
                   + suggest(region.aws_region, sorted(AWS_REGIONS)))


def _leaf_templates(cfg: Config, tmpl: CheckTemplate) -> Iterator[CheckTemplate]:
    seen: set[int] = set()
    stack = [tmpl]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.type == "CALCULATED":
            stack.extend(cfg.checks[c] for c in t.child_checks or [] if c in cfg.checks)
        else:
            yield t


_POLICY_FIELDS = {"failover": ("order", "failback_delay"), "weighted": ("weights",),
                  "latency": ("regions", "latency_hysteresis_percent", "latency_hysteresis_ms",
                              "latency_min_hold")}


def _check_records(cfg: Config) -> Iterator[Issue]:
    zones = ", ".join(z.zone for z in cfg.zone_specs)
    region_issues: dict[tuple[object, ...], list[Issue]] = {}
    seen: dict[tuple[str, str], int] = {}
    types_at: dict[str, dict[str, int]] = {}
    providers = {z.zone: z.provider.type for z in cfg.zone_specs}
    for i, rec in enumerate(cfg.records):
        at: tuple[str | int, ...] = ("records", i)
        zone = cfg.zone_of(rec.name)
        if zone is None:
            yield ((*at, "name"), f"{rec.name} is outside the zone {zones}" if not cfg.zones
                   else f"{rec.name} is in none of the zones ({zones})")
        if rec.pool is not None and rec.pool not in cfg.pools:
            known = ", ".join(cfg.pools) or "none defined"
            yield ((*at, "pool"), f"no pool '{rec.pool}' (pools: {known})"
                   + suggest(rec.pool, list(cfg.pools)))
        bad = _reserved(cfg, rec.name) or _name_problem(rec, zone, providers.get(zone or ""))
        if bad is not None:
            yield ((*at, "name"), bad)
        if rec.policy == "latency" and providers.get(zone or "") == "route53":
            yield from _check_aws_regions(cfg, at, rec)
        key = (rec.name, rec.type)
        if key in seen:
            yield ((*at, "name"), f"duplicate record: {rec.name} {rec.type} is also records[{seen[key]}]")
        seen.setdefault(key, i)
        types_at.setdefault(rec.name, {}).setdefault(rec.type, i)
        for policy, fields in _POLICY_FIELDS.items():
            for f in fields:
                if policy != rec.policy and f in rec.model_fields_set:
                    yield ((*at, f), f"'{f}' applies only to policy {policy} "
                                     f"(this record is {rec.policy})")
        shape = (rec.type, rec.policy, rec.tiers, tuple((rec.weights or {}).items()),
                 tuple(rec.regions or ()), rec.regions is None, rec.pool,
                 tuple(sorted(rec.model_fields_set & {"order", "weights", "regions"})))
        found = region_issues.get(shape)
        if found is None:  # records alike share their findings (10,000 records, 1 s less)
            found = region_issues[shape] = [(p[2:], m) for p, m in
                                            _check_record_regions(cfg, 0, rec)]
        yield from (((*at, *p), m) for p, m in found)
    for name, types in types_at.items():
        if "CNAME" in types and len(types) > 1:
            others = ", ".join(sorted(t for t in types if t != "CNAME"))
            yield (("records", types["CNAME"], "type"),
                   f"{name} has a CNAME and also {others}: a CNAME cannot sit beside other types")


DNS_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
HOST_NAME_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HOST_NAME = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+$")


def _reserved(cfg: Config, name: str) -> str | None:
    """Why a name is failover's own (a marker or the fleet's fence), or None: a record
    there would replace what tells failover which names it owns, or who may write."""
    from failover.dns.base import FENCE_LABEL

    first = name.split(".", 1)[0]
    prefix = cfg.ownership.marker_prefix
    if first == prefix:
        return (f"{name} is under the marker prefix '{prefix}': failover keeps each managed "
                "name's ownership marker there (ownership.marker_prefix); a record there "
                "would replace a marker and stop failover for its name")
    if first == FENCE_LABEL:
        return (f"{name} is the writers' fence ({FENCE_LABEL}.<zone>): failover keeps the "
                "identity of the controller allowed to write there")
    return None


def _name_problem(rec: Record, zone: str | None, provider: str | None) -> str | None:
    """Why a record's name cannot be written, or None. Every provider: letters, digits,
    '-' and '_' per label ('*' alone as the first, a wildcard), and no CNAME at a zone's
    apex. RFC 2136 servers and zone files (BIND's check-names): an A or AAAA owner is a
    host name (no '_', no '-' at either end of a label), or BIND refuses the whole
    UPDATE it arrives in."""
    if HOST_NAME.match(rec.name) and not (rec.type == "CNAME" and rec.name == zone):
        return None  # the common case, in one match
    labels = rec.name.rstrip(".").split(".")
    for j, label in enumerate(labels):
        if not (DNS_LABEL.match(label) or (label == "*" and j == 0)):
            odd = sorted({c for c in label if not (c.isalnum() and c.isascii()) and c not in "-_"})
            shown = ("an escaped character (\\032 is a space)" if "\\" in label else
                     ", ".join(repr(c) for c in odd) or "its length")
            return (f"{rec.name} is not a name failover writes: label '{label}' has {shown} "
                    "(letters, digits, '-' and '_' only)")
    if zone is None:
        return None
    if rec.type == "CNAME" and rec.name == zone:
        return (f"{rec.name} is the zone's apex: a CNAME cannot sit there (beside the SOA "
                "and NS records); use A/AAAA records, or your provider's alias record")
    if rec.type in ("A", "AAAA") and provider in ("rfc2136", "bind", "zonefile"):
        for j, label in enumerate(labels):
            if not HOST_NAME_LABEL.match(label) and not (label == "*" and j == 0):
                return (f"{rec.name} is not a host name (label '{label}'): an {rec.type} "
                        "owner takes letters, digits and inner '-' only; BIND's check-names "
                        "refuses it, and with it the whole update it arrives in")
    return None


def _check_aws_regions(cfg: Config, at: tuple[str | int, ...], rec: Record) -> Iterator[Issue]:
    """A Route 53 latency record needs an AWS region for each of its regions: without
    one the region gets no record set, and a failover away from the others would leave
    the name empty (refused by the guards: Route 53 would keep serving a dead region)."""
    for j, region in enumerate(cfg.record_regions(rec)):
        if region in cfg.regions and cfg.aws_region_of(region) is None:
            path = (*at, "regions", j) if rec.regions is not None else (*at, "policy")
            yield (path, f"region '{region}' needs aws_region for Route 53 latency records "
                         "(its name is not an AWS region)")


def _check_record_regions(cfg: Config, i: int, rec: Record) -> Iterator[Issue]:
    at: tuple[str | int, ...] = ("records", i)
    refs: list[tuple[tuple[str | int, ...], str]] = []
    if rec.policy == "failover":
        if rec.order is None:
            yield ((*at, "order"), "policy failover needs 'order': the regions, first healthy answers")
        elif not rec.order:
            yield ((*at, "order"), "order is empty: list at least one region")
        for j, tier in enumerate(rec.order or []):
            if isinstance(tier, list):
                if not tier:
                    yield ((*at, "order", j), "an empty tier: list at least one region")
                refs += [((*at, "order", j, k), r) for k, r in enumerate(tier)]
            else:
                refs.append(((*at, "order", j), tier))
    elif rec.policy == "weighted":
        if not rec.weights:
            yield ((*at, "weights"), "policy weighted needs 'weights': region: 0-255")
        refs += [((*at, "weights", r), r) for r in rec.weights or {}]
    elif rec.regions is not None:
        if not rec.regions:
            yield ((*at, "regions"), "regions is empty: list at least one region, or omit it for all")
        refs += [((*at, "regions", j), r) for j, r in enumerate(rec.regions)]
    first: dict[str, tuple[str | int, ...]] = {}
    for path, region in refs:
        if region not in cfg.regions:
            yield (path, f"unknown region '{region}' (regions: {', '.join(cfg.regions)})"
                   + suggest(region, list(cfg.regions)))
            continue
        if region in first:
            yield (path, f"region '{region}' appears twice in this record")
            continue
        first[region] = path
        pool = rec.pool if rec.pool in cfg.pools else None
        if not any(ep.kind == rec.type for _, ep in cfg.endpoints_of(region, pool)):
            want = {"A": "an IPv4 address", "AAAA": "an IPv6 address", "CNAME": "a host name"}
            where = f"pool '{pool}' has" if pool else f"region '{region}' has"
            yield (path, f"{where} no endpoint {'in ' + region + ' ' if pool else ''}with "
                         f"{want[rec.type]} to serve in {'an' if rec.type == 'A' else 'a'} "
                         f"{rec.type} record")


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""

