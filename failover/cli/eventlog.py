"""`history`: the event log (health changes, decisions, DNS writes, overrides, errors),
newest last, from a time on."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from failover.cli.group import config_option, read_config


def _parse_since(value: str | None) -> float | None:
    from datetime import UTC, datetime

    from failover.durations import parse_duration

    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds is not None:
        return time.time() - seconds
    try:
        return float(value)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"'{value}': expected a duration like 10m, 2h30m, 1d, an "
                                 "ISO 8601 time or epoch seconds", param_hint="--since") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@click.command()
@config_option
@click.option("--since", help="Only events newer than this: 10m, 2h30m, 1d, an ISO 8601 "
              "time (2026-11-23T10:00Z) or epoch seconds.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many events, the newest.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def history(config_path: str, since: str | None, limit: int, as_json: bool) -> None:
    """The event log: health changes, decisions, DNS writes, overrides, errors."""
    from failover.state import open_state

    cfg = read_config(config_path)
    state = open_state(cfg)
    try:
        events = state.history(_parse_since(since), limit + 1)  # one more: were some left out?
    finally:
        state.close()
    cut = len(events) > limit
    events = events[-limit:]
    if as_json:
        click.echo(json.dumps([{"at": e.at, "kind": e.kind, "subject": e.subject,
                                "message": e.message, "detail": dict(e.detail)}
                               for e in events], indent=2))
    else:
        _print_events(events)
    if cut:
        click.echo(f"the newest {limit} events shown; there are older ones"
                   + (f" since {since}" if since else "")
                   + ": a larger --limit (or a later --since) shows them", err=True)


def _print_events(events: list[Any]) -> None:
    for e in events:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
        about = "" if e.subject in e.message or e.subject in ("controller", "dns", "cli") else (
            f"{e.subject}: ")
        where = f"[{e.detail['vantage']}] " if e.detail.get("vantage") else ""  # a fleet
        click.echo(f"{stamp}Z {e.kind:<10} {where}{about}{e.message}")
