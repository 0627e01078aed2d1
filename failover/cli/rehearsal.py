"""Failing over on purpose: `drill` against the running controller, timed on every
authoritative server, and `simulate`, a scenario replayed on a virtual clock."""

from __future__ import annotations

import json
import sys

import click

from failover.cli.group import EXIT_INPUT, EXIT_OK, config_option, read_config


@click.command()
@config_option
@click.option("--scenario", "scenario_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=str), help="The scenario (YAML).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def simulate(config_path: str, scenario_path: str, as_json: bool) -> None:
    """Replay a scenario on a virtual clock through the real health and policy code and
    print the DNS timeline; exit 2 when an expectation fails."""
    from pathlib import Path

    from failover import simulate as sim

    cfg = read_config(config_path)
    scenario = sim.load_scenario(Path(scenario_path), cfg)
    timeline = sim.simulate(cfg, scenario)
    if as_json:
        click.echo(json.dumps({"events": timeline.events, "failures": timeline.failures},
                              indent=2))
    else:
        click.echo(sim.render(timeline))
        for f in timeline.failures:
            click.echo(f"expectation failed: {f}", err=True)
    sys.exit(EXIT_INPUT if timeline.failures else EXIT_OK)


@click.command()
@config_option
@click.argument("region")
@click.option("--mode", type=click.Choice(["drain", "fail-checks"]), default="drain",
              show_default=True, help="Force the region out by a drain, or by failing its checks.")
@click.option("--timeout", type=click.FloatRange(min=1), default=120.0, show_default=True,
              help="Seconds the whole drill may take: the answers moving, and coming back.")
@click.option("--server", "servers", multiple=True, metavar="HOST[:PORT]",
              help="An authoritative server to watch (repeat for each); default: "
                   "drill.servers, else the zone's NS set.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def drill(config_path: str, region: str, mode: str, timeout: float, servers: tuple[str, ...],
          as_json: bool) -> None:
    """Fail REGION over on purpose against the running controller and time it on every
    authoritative server (with views, in every view: each client network's answer)."""
    from failover import drill as drills
    from failover.dns.authoritative import authoritative_servers
    from failover.service import adapter_for
    from failover.state import open_state

    cfg = read_config(config_path)
    if servers:
        _check_servers(servers)
    watch, source = authoritative_servers(cfg, adapter_for(cfg), servers)
    offset = drills.controller_ready(cfg)
    state = open_state(cfg)
    try:
        # on a terminal, each record as it moves on each server
        progress = ((lambda line: click.echo(f"  {line}", err=True))
                    if sys.stderr.isatty() and not as_json else None)
        report = drills.drill(cfg, state, watch, region, mode,  # type: ignore[arg-type]
                              timeout=timeout, source=source, offset=offset, progress=progress)
    finally:
        state.close()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    views = list(report.get("networks", {}))
    where = (f"{len(watch)} authoritative server(s)" if not views else
             f"{len({(s.address, s.port) for s in watch})} authoritative server(s), each "
             f"in views {', '.join(views)},")
    click.echo(f"drill of {region} ({mode}) on {where} from {source}: every answer moved in "
               f"{report['total_s']} s, back in {report['back_total_s']} s")
    for line in drills.network_lines(report):  # with views: each network's own time
        click.echo(f"  {line}")
    for r in report["records"]:
        click.echo(f"  {r['record']}: detection {r['detection_s']} s, write {r['write_s']} s, "
                   f"served {r['served_s']} s, total {r['total_s']} s; back {r['back_s']} s; "
                   f"behind resolvers up to {r['behind_resolvers_s']} s (TTL {r['ttl']} s)")
        for server, t in r["servers"].items():
            click.echo(f"    {server}: served {t['served_s']} s, back {t['back_s']} s")
        for net, n in r.get("networks", {}).items():
            if not n["moved"]:
                click.echo(f"    {net}: nothing to move (answers "
                           f"{', '.join(n['before']) or 'nothing'})")
    click.echo(drills.resolvers_note(report))


def _check_servers(values: tuple[str, ...]) -> None:
    """--server values: exit 2 naming the bad one."""
    from pydantic import ValidationError

    from failover.config import DrillSettings

    try:
        DrillSettings(servers=list(values))
    except ValidationError as exc:
        bad = values[int(exc.errors()[0]["loc"][1])]
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint=f"--server {bad!r}") from None
