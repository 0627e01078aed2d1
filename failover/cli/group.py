"""The `failover` group and what every command shares: the --config option, the exit
codes, reading the config, and the entry point that turns expected failures into a
message and an exit code. It knows no command: `failover.cli` attaches them."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from failover.errors import ConfigError, FailoverError

if TYPE_CHECKING:
    from failover.config import Config

EXIT_OK, EXIT_FAILURE, EXIT_INPUT = 0, 1, 2

config_option = click.option(
    "--config", "config_path", required=not os.environ.get("FAILOVER_CONFIG"), metavar="FILE",
    envvar="FAILOVER_CONFIG", show_envvar=True, type=click.Path(dir_okay=False, path_type=str),
    help="The failover config (YAML); optional when FAILOVER_CONFIG is set.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="failover")
def cli() -> None:
    """failover: multi-region DNS failover with Route 53-style health checks.

    Exit codes: 0 ok, 1 runtime failure, 2 invalid input; plan: 0 no changes, 2 changes
    pending, 1 any error (as terraform plan -detailed-exitcode).
    """


def read_config(path: str) -> Config:
    """The config at `path`; raises ConfigError naming every problem (exit 2)."""
    from failover.config import load_config

    return load_config(path)


def main() -> None:
    """Console entry point: expected failures print a message, never a traceback."""
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        n = len(exc.issues)
        click.echo(f"invalid {exc.what} ({n} problem{'s' if n != 1 else ''}):", err=True)
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except FailoverError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
