"""`import`: write a config from a zone that already serves (Route 53, or any RFC 2136
server by AXFR), so that `plan` on it shows nothing but ownership markers."""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from failover.errors import FailoverError, InputError

if TYPE_CHECKING:
    from failover.importing import Imported, Network


def _ranges(items: tuple[str, ...]) -> list[tuple[str, Network]]:
    from failover.config.fields import REGION_NAME

    out = []
    for item in items:
        name, sep, cidr = item.partition("=")
        if not sep or not REGION_NAME.match(name):
            raise click.BadParameter(f"'{item}': expected NAME=CIDR (a region name of "
                                     "letters, digits, '.', '_', '-')", param_hint="--region")
        try:
            out.append((name, ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError as exc:
            raise click.BadParameter(f"'{item}': {exc}", param_hint="--region") from None
    return out


class _Line:
    """A progress line on stderr, only when stderr is a terminal."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.on = sys.stderr.isatty()
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.on:
            return
        of = f"/{total}" if total else ""
        click.echo(f"\r{self.what}: {done}{of}", nl=False, err=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)


@click.command(name="import")
@click.option("--from", "source", required=True, type=click.Choice(["route53", "rfc2136"]),
              help="Where the zone is served.")
@click.option("--zone", required=True, help="route53: the hosted zone id or name; "
              "rfc2136: the zone name.")
@click.option("--endpoint-url", metavar="URL", help="route53: another endpoint (moto_server).")
@click.option("--profile", help="route53: the AWS profile (default: credentials from the "
              "environment, as the provider's).")
@click.option("--server", help="rfc2136: the primary's IP address.")
@click.option("--port", type=int, default=53, show_default=True, help="rfc2136: its port.")
@click.option("--tsig-name", help="rfc2136: the TSIG key's name (tsig.name).")
@click.option("--tsig-algorithm", default="hmac-sha256", show_default=True,
              help="rfc2136: the key's algorithm (tsig.algorithm).")
@click.option("--tsig-secret-file", type=click.Path(dir_okay=False, exists=True),
              help="rfc2136: a file holding the base64 secret (tsig.secret_file).")
@click.option("--tsig-secret-env", metavar="VAR",
              help="rfc2136: an environment variable holding it (tsig.secret_env).")
@click.option("--region", "regions", multiple=True, metavar="NAME=CIDR",
              help="rfc2136: addresses in CIDR belong to region NAME (repeatable, in "
                   "failover order).")
@click.option("--names", metavar="GLOB", help="Only names matching GLOB (e.g. '*.api.example.com').")
@click.option("--policy", type=click.Choice(["failover", "weighted", "latency"]),
              help="route53: only records of this routing policy; rfc2136: the policy of "
                   "every record (default failover, regions in the order given).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the config here "
              "(default: stdout).")
@click.option("--force", is_flag=True, help="Overwrite --output when it exists.")
def import_cmd(source: str, zone: str, endpoint_url: str | None, profile: str | None,
               server: str | None, port: int, tsig_name: str | None, tsig_algorithm: str,
               tsig_secret_file: str | None, tsig_secret_env: str | None,
               regions: tuple[str, ...], names: str | None, policy: str | None,
               output: str | None, force: bool) -> None:
    """Write a config from a zone that already serves: `failover plan` on it then shows
    no changes but the ownership markers (ownership.adopt), which the first run writes.

    What it cannot express (aliases, other routing policies, names outside the regions)
    is listed at the top of the file and on stderr, never dropped silently."""
    from failover.config import parse_config
    from failover.errors import ConfigError
    from failover.importing import render

    out = Path(output) if output else None
    if out is not None and out.exists() and not force:
        raise InputError(f"{out} exists: give --force to overwrite it")
    line = _Line("reading")
    try:
        if source == "route53":
            imported, where = _route53(zone, endpoint_url, profile, names, policy, line)
        else:
            imported, where = _rfc2136(zone, server, port, tsig_name, tsig_algorithm,
                                       tsig_secret_file, tsig_secret_env, regions, names,
                                       policy, line, out)
    finally:
        line.close()
    if not imported.config["records"]:
        for note in imported.notes:
            click.echo(f"not imported: {note}", err=True)
        raise InputError(f"nothing to import from {where}: no name fits (see above)")
    text = render(imported, where)
    try:  # never write a config that `validate` would refuse
        parse_config(text, source=str(out or "imported config"),
                     base_dir=(out.resolve().parent if out else Path.cwd()))
    except ConfigError as exc:
        raise FailoverError(f"the imported config does not validate (a bug in import):\n{exc}"
                            ) from None
    for note in imported.notes:
        click.echo(f"not imported: {note}", err=True)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
        click.echo(f"wrote {out}: {imported.records} record(s) on {imported.names} name(s) "
                   f"from {where}; {len(imported.notes)} note(s) at its top", err=True)


def _route53(zone: str, endpoint_url: str | None, profile: str | None, names: str | None,
             policy: str | None, progress: _Line) -> tuple[Imported, str]:
    import re

    from failover.config import Route53Provider
    from failover.dns.route53 import Route53Adapter
    from failover.importing import from_route53
    from failover.records import absolute_name

    def adapter(zone_id: str) -> Route53Adapter:
        prov = Route53Provider(type="route53", hosted_zone_id=zone_id, endpoint_url=endpoint_url,
                               profile=profile)
        return Route53Adapter(zone, prov)

    if re.fullmatch(r"(/hostedzone/)?[A-Z0-9]{1,32}", zone):
        api = adapter(zone)
        info = api.call("get_hosted_zone", Id=api.zone_id)["HostedZone"]
    else:
        api = adapter("LOOKUP")
        want = absolute_name(zone)
        found = [z for z in api.call("list_hosted_zones_by_name", DNSName=want,
                                     MaxItems="100")["HostedZones"]
                 if absolute_name(z["Name"]) == want]
        if not found:
            raise InputError(f"no hosted zone named {want}")
        if len(found) > 1:
            raise InputError(f"{len(found)} hosted zones are named {want}: give --zone the "
                             "hosted zone id (" + ", ".join(
                                 z["Id"].split("/")[-1] for z in found) + ")")
        info = found[0]
    zone_id = info["Id"].split("/")[-1]
    zone_name = absolute_name(info["Name"])
    api.zone_id = zone_id
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "MaxItems": "300"}
    while True:
        page = api.call("list_resource_record_sets", **kwargs)
        items += page["ResourceRecordSets"]
        progress(len(items), None)
        if not page.get("IsTruncated"):
            break
        kwargs["StartRecordName"] = page["NextRecordName"]
        kwargs["StartRecordType"] = page["NextRecordType"]
        kwargs.pop("StartRecordIdentifier", None)
        if page.get("NextRecordIdentifier"):
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
    used = {i["HealthCheckId"] for i in items if i.get("HealthCheckId")}
    checks: dict[str, dict[str, Any]] = {}
    if used:
        marker: dict[str, Any] = {}
        while True:
            page = api.call("list_health_checks", **marker)
            checks.update({hc["Id"]: hc["HealthCheckConfig"] for hc in page["HealthChecks"]
                           if hc["Id"] in used})
            if not page.get("IsTruncated"):
                break
            marker = {"Marker": page["NextMarker"]}
    provider: dict[str, Any] = {"type": "route53", "hosted_zone_id": zone_id}
    if endpoint_url:
        provider["endpoint_url"] = endpoint_url
    if profile:
        provider["profile"] = profile
    progress.what = "importing"
    where = f"Route 53 hosted zone {zone_name} ({zone_id}) at {_now()}"
    return from_route53(items, checks, zone=zone_name, provider=provider, names=names,
                        policy=policy, progress=progress), where


def _rfc2136(zone: str, server: str | None, port: int, tsig_name: str | None,
             tsig_algorithm: str, secret_file: str | None, secret_env: str | None,
             regions: tuple[str, ...], names: str | None, policy: str | None,
             progress: _Line, out: Path | None) -> tuple[Imported, str]:
    from pydantic import SecretStr, ValidationError

    from failover.config import BindProvider
    from failover.config.fields import resolve_secret
    from failover.dns.bind import BindAdapter
    from failover.importing import from_rfc2136
    from failover.records import absolute_name

    if not server:
        raise click.UsageError("--from rfc2136 needs --server")
    ranges = _ranges(regions)
    if not ranges:
        raise click.UsageError("--from rfc2136 needs at least one --region NAME=CIDR")
    if bool(secret_file) == bool(secret_env) and tsig_name:
        raise click.UsageError("give the key's secret by one of --tsig-secret-file and "
                               "--tsig-secret-env")
    tsig: dict[str, Any] | None = None
    if tsig_name:
        tsig = {"name": tsig_name, "algorithm": tsig_algorithm}
        if secret_file:
            # as the config resolves it: relative to the written file (absolute on stdout)
            path = Path(secret_file).resolve()
            tsig["secret_file"] = (os.path.relpath(path, out.resolve().parent)
                                   if out is not None else str(path))
        else:
            tsig["secret_env"] = secret_env
    provider: dict[str, Any] = {"type": "rfc2136", "server": server, "port": port}
    if tsig is not None:
        provider["tsig"] = tsig
    try:
        prov = BindProvider(**{**provider, "tsig": {
            **tsig, "secret_file": secret_file} if tsig and secret_file else tsig})
    except ValidationError as exc:
        raise InputError(f"invalid server or key: {exc.errors()[0]['msg']}") from None
    secret: SecretStr | None = None
    if prov.tsig is not None:
        secret = resolve_secret(prov.tsig.secret_env, prov.tsig.secret_file, "--tsig-secret",
                                Path.cwd())
    zone_name = absolute_name(zone)
    listing = BindAdapter(zone_name, prov, secret).listing()
    progress.what = "importing"
    where = f"RFC 2136 zone {zone_name} on {server}:{port} (AXFR) at {_now()}"
    return from_rfc2136(listing, zone=zone_name, provider=provider, ranges=ranges,
                        names=names, policy=policy, progress=progress), where


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
