"""`probe`: the config's health checks run from here, once (a table or JSON) or on
schedule as results come."""

from __future__ import annotations

import json
from typing import Any

import click

from failover.cli.group import config_option, read_config


@click.command("probe")
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

    cfg = read_config(config_path)
    if mode == "once":
        rows = run_loop(probe_once(cfg))
        if as_json:
            click.echo(json.dumps(rows, indent=2))
        else:
            _print_table(rows)
        return
    run_loop(watch(cfg, duration, lambda line: click.echo(line), as_json))


def _print_table(rows: list[dict[str, Any]]) -> None:
    from failover.probes.watch import latency_words

    headers = ("ENDPOINT", "CHECK", "RESULT", "LATENCY", "STATUS", "REASON")
    table = [headers] + [(
        r["endpoint"], r["check"], "ok" if r["ok"] else "FAIL",
        latency_words(r["ok"], r["reason"], r["latency_ms"]),
        r["status"], r["reason"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]))
