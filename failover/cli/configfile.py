"""Commands about the config file itself: `validate` (every problem and warning, by
field path and line) and `schema` (its JSON Schema, for editors)."""

from __future__ import annotations

import json

import click

from failover.cli.group import config_option, read_config


@click.command()
@config_option
def validate(config_path: str) -> None:
    """Check a config; every problem is named by field path and line (exit 2)."""
    from failover.caveats import closed_warnings, weight_warnings
    from failover.config import network_notes, secret_file_exposed
    from failover.errors import SecretMissing

    cfg = read_config(config_path)
    endpoints = len(cfg.all_endpoints())
    counts = ", ".join(_count(n, what) for n, what in (
        (len(cfg.records), "record"), (len(cfg.regions), "region"), (endpoints, "endpoint"),
        (len(cfg.checks), "check template")))
    zones = (f"zone {cfg.zone}, provider {cfg.provider.type}" if len(cfg.zone_specs) == 1
             else "zones " + ", ".join(f"{z.zone} (provider {z.provider.type})"
                                       for z in cfg.zone_specs))
    nets = (f", networks {', '.join(cfg.network_names)}" if cfg.networks else "")
    click.echo(f"{config_path}: ok: {zones}, {counts}{nets}")
    exposed = cfg.controller.exposed()
    if exposed:
        click.echo(f"warning: {exposed}", err=True)
    if cfg.controller.cluster is not None and cfg.controller.cluster.etcd.in_clear():
        click.echo(f"warning: {cfg.controller.cluster.etcd.in_clear()}", err=True)
    # a secret not there yet is a warning (the service's environment may hold it); one
    # that is there but blank, short or malformed is an error
    try:
        cfg.tsig_secret()
    except SecretMissing as exc:
        click.echo(f"warning: {exc} (needed before DNS can be written)", err=True)
    for i, spec in enumerate(cfg.zone_specs):
        views = getattr(spec.provider, "views", None)
        if views:
            for net, view in views.items():
                where = ("provider" if cfg.zones is None else f"zones[{i}].provider")
                try:
                    cfg.key_secret(view.tsig, f"{where}.views.{net}.tsig")
                except SecretMissing as exc:
                    click.echo(f"warning: {exc} (needed before view {net} can be written)",
                               err=True)
    try:
        cfg.api_token()
    except SecretMissing as exc:
        click.echo(f"warning: {exc} (needed before the controller can start)", err=True)
    from failover.config.notify import sink_names, sink_secrets

    for i, (name, sink) in enumerate(zip(sink_names(cfg.notify), cfg.notify, strict=True)):
        try:
            sink_secrets(sink, f"notify[{i}]", cfg.base_dir)
        except SecretMissing as exc:
            click.echo(f"warning: {exc} (sink {name} cannot send without it)", err=True)
    for path in cfg.secret_files():
        exposed = secret_file_exposed(path)
        if exposed is not None:
            click.echo(f"warning: {exposed}", err=True)
    # validate reads no DNS: the closed warning names the negative TTL without its figure
    for warning in weight_warnings(cfg) + closed_warnings(cfg) + network_notes(cfg):
        click.echo(f"warning: {warning}", err=True)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@click.command()
def schema() -> None:
    """Print the JSON Schema of the config file, for editors."""
    from failover.config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))
