"""The `failover` command line: each command attached to the group, and the console
entry point. Heavy modules load inside commands: `--help` stays fast."""

from __future__ import annotations

from failover.cli.configfile import schema, validate
from failover.cli.eventlog import history
from failover.cli.group import cli, main
from failover.cli.importing import import_cmd
from failover.cli.overriding import drain, pin, restore, unpin
from failover.cli.planning import plan
from failover.cli.probing import probe_cmd
from failover.cli.rehearsal import drill, simulate
from failover.cli.running import demo, run
from failover.cli.statusview import status

for _command in (validate, schema, plan, probe_cmd, run, status, drain, restore, pin, unpin,
                 history, simulate, drill, demo, import_cmd):
    cli.add_command(_command)

__all__ = ["cli", "main"]
