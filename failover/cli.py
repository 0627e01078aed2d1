"""The `failover` command line. Heavy modules load inside commands: `--help` stays fast."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from failover.errors import ConfigError, FailoverError

if TYPE_CHECKING:
    from failover.config import Config

EXIT_OK, EXIT_FAILURE, EXIT_INPUT = 0, 1, 2

config_option = click.option(
    "--config", "config_path", required=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=str), help="The failover config (YAML).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="failover")
def cli() -> None:
    """failover: multi-region DNS failover with Route 53-style health checks.

    Exit codes: 0 ok, 1 runtime failure, 2 invalid input (or, for plan, changes pending).
    """


def _load(path: str) -> Config:
    from failover.config import load_config

    return load_config(path)


@cli.command()
@config_option
def validate(config_path: str) -> None:
    """Check a config; every problem is named by field path and line (exit 2)."""
    from failover.errors import SecretError

    cfg = _load(config_path)
    endpoints = sum(len(r.endpoints) for r in cfg.regions.values())
    counts = ", ".join(_count(n, what) for n, what in (
        (len(cfg.records), "record"), (len(cfg.regions), "region"), (endpoints, "endpoint"),
        (len(cfg.checks), "check template")))
    click.echo(f"{config_path}: ok: zone {cfg.zone}, provider {cfg.provider.type}, {counts}")
    try:
        cfg.tsig_secret()
    except SecretError as exc:
        click.echo(f"warning: {exc} (needed before DNS can be written)", err=True)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the config file, for editors."""
    from failover.config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))


def _parse_assume(cfg: Config, items: tuple[str, ...]) -> dict[str, bool]:
    assumed: dict[str, bool] = {}
    for item in items:
        region, sep, state = item.partition("=")
        if not sep or state.lower() not in ("up", "down"):
            raise click.BadParameter(f"'{item}': expected REGION=up or REGION=down",
                                     param_hint="--assume")
        if region not in cfg.regions:
            raise click.BadParameter(f"'{item}': unknown region '{region}' "
                                     f"(regions: {', '.join(cfg.regions)})",
                                     param_hint="--assume")
        assumed[region] = state.lower() == "up"
    return assumed


@cli.command()
@config_option
@click.option("--assume", multiple=True, metavar="REGION=up|down",
              help="Plan as if every endpoint of REGION were up or down (repeatable).")
@click.option("--no-read", is_flag=True,
              help="Do not read DNS: plan against an empty zone (offline CI checks).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--markdown", is_flag=True, help="Markdown, for CI comments.")
def plan(config_path: str, assume: tuple[str, ...], no_read: bool, as_json: bool,
         markdown: bool) -> None:
    """Show what the controller would write now; exit 0 when nothing, 2 when changes."""
    from failover import plan as planning
    from failover.dns import make_adapter
    from failover.health import assume_regions, initial_snapshot
    from failover.reconcile import plan_step, read_actual
    from policies import Overrides

    if as_json and markdown:
        raise click.UsageError("choose one of --json and --markdown")
    cfg = _load(config_path)
    assumed = _parse_assume(cfg, assume)
    now = time.time()
    snapshot = assume_regions(initial_snapshot(cfg, now), cfg, assumed, now)
    kind = cfg.provider.type
    adapter = None
    if kind == "none":
        source = "provider none: no DNS to read"
    elif no_read:
        source = "not read (--no-read): planned against an empty zone"
    else:
        try:
            adapter = make_adapter(cfg)
            source = f"read from provider {kind}"
        except NotImplementedError:
            source = f"provider {kind} is not read by this version: planned against an empty zone"
    actual = read_actual(cfg, adapter)
    step = plan_step(cfg, snapshot, Overrides(), {}, now, actual, ownership=kind != "none")
    changes, blocked, refused = step.changes, step.claimed.blocked, step.violations
    if as_json:
        out = {**planning.to_json(changes), "provider": kind, "actual": source,
               "assumed": {r: "up" if up else "down" for r, up in assumed.items()},
               "decisions": [d.to_dict() for d in step.decisions], "blocked": blocked,
               "refused": refused}
        click.echo(json.dumps(out, indent=2))
    elif markdown:
        click.echo(f"### failover plan for `{cfg.zone}`\n")
        for d in step.decisions:
            click.echo(f"- `{d.name}` {d.type} ({d.policy}): {d.reason}")
        click.echo("\n" + planning.to_markdown(changes))
        for name, why in blocked.items():
            click.echo(f"\n> **left alone:** `{name}` {why}")
        for v in refused:
            click.echo(f"\n> **refused by safety guard:** {v}")
    else:
        click.echo(f"zone {cfg.zone} (actual records {source})")
        for d in step.decisions:
            answer = ",".join(d.values) or "(no answer)"
            click.echo(f"  {d.name} {d.type} {d.policy}: {answer}\n      {d.reason}")
        click.echo("")
        click.echo(planning.to_table(changes))
        for name, why in blocked.items():
            click.echo(f"left alone: {name} {why}")
        for v in refused:
            click.echo(f"refused by safety guard: {v}")
    sys.exit(EXIT_INPUT if changes else EXIT_OK)


@cli.command("probe")
@config_option
@click.option("--once", "mode", flag_value="once", default=True,
              help="Probe every endpoint once and show the results (default).")
@click.option("--watch", "mode", flag_value="watch",
              help="Probe on schedule and print results and status changes as they come.")
@click.option("--duration", type=click.FloatRange(min=0), metavar="SECONDS",
              help="With --watch: stop after this long (default: until interrupted).")
@click.option("--json", "as_json", is_flag=True, help="JSON (--watch: one object per line).")
def probe_cmd(config_path: str, mode: str, duration: float | None, as_json: bool) -> None:
    """Run the health checks of a config and show each endpoint's result and status."""
    from failover.probes.runtime import run_loop
    from failover.probes.watch import probe_once, watch

    cfg = _load(config_path)
    if mode == "once":
        rows = run_loop(probe_once(cfg))
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            _print_table(rows)
        return
    run_loop(watch(cfg, duration, lambda line: click.echo(line), as_json))


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = ("ENDPOINT", "CHECK", "RESULT", "LATENCY", "STATUS", "REASON")
    table = [headers] + [(
        r["endpoint"], r["check"], "ok" if r["ok"] else "FAIL",
        "" if r["latency_ms"] is None else f"{r['latency_ms']:.1f} ms",
        r["status"], r["reason"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))


def main() -> None:
    """Console entry point: expected failures print a message, never a traceback."""
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        n = len(exc.issues)
        click.echo(f"invalid config ({n} problem{'s' if n != 1 else ''}):", err=True)
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except FailoverError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
