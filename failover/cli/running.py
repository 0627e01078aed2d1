"""The commands that run the controller: `run` (the service, on a config) and `demo`
(on an embedded default, alone or as a fleet)."""

from __future__ import annotations

import sys

import click

from failover.cli.group import config_option
from failover.errors import FailoverError


@click.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Decide and plan, log what would change, write nothing.")
@click.option("--once", is_flag=True, help="One probe round and one reconcile, then exit.")
@click.option("--force", is_flag=True,
              help="Apply plans that break the safety guards (mass deletes, a name left empty).")
@click.option("--take-over", is_flag=True,
              help="Write the zone though another controller holds its fence (that one then "
                   "stops writing).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Structured logs on stderr.")
def run(config_path: str, dry_run: bool, once: bool, force: bool, take_over: bool,
        log_format: str) -> None:
    """Run the controller: probe, decide, write DNS, confirm, record why.

    SIGTERM stops after the tick in flight; SIGHUP reloads the config (an invalid one is
    refused and the running config stays).
    """
    import logging

    from failover.service import serve, setup_logging

    setup_logging(log_format)
    try:
        serve(config_path, dry_run=dry_run, once=once, force=force, take_over=take_over)
    except FailoverError as exc:
        if log_format != "json":
            raise
        # with JSON logs, the reason it stopped is a JSON line too
        logging.getLogger("failover").critical("event=stopped error=%r", str(exc))
        sys.exit(exc.exit_code)


@click.command()
@click.option("--dir", "directory", default=".demo", show_default=True,
              type=click.Path(file_okay=False, path_type=str),
              help="Where the demo keeps its named, config and state.")
@click.option("--fleet", "fleet", type=click.IntRange(1, 5), default=None, metavar="N",
              help="A fleet instead: a private 3-member etcd and N controllers, one per "
                   "vantage, one elected leader writing (docs/ha.md).")
def demo(directory: str, fleet: int | None) -> None:
    """Run the controller on an embedded default: a private named and two local regions."""
    from pathlib import Path

    from failover.demo import run_demo, run_fleet_demo
    from failover.service import setup_logging

    setup_logging("text")
    if fleet is not None:
        run_fleet_demo(Path(directory), fleet)
        return
    run_demo(Path(directory))
