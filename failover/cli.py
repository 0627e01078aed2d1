"""The `failover` command line. Heavy modules load inside commands: `--help` stays fast."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

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


def _load(path: str) -> Config:
    from failover.config import load_config

    return load_config(path)


@cli.command()
@config_option
def validate(config_path: str) -> None:
    """Check a config; every problem is named by field path and line (exit 2)."""
    from failover.errors import SecretError

    cfg = _load(config_path)
    endpoints = len(cfg.all_endpoints())
    counts = ", ".join(_count(n, what) for n, what in (
        (len(cfg.records), "record"), (len(cfg.regions), "region"), (endpoints, "endpoint"),
        (len(cfg.checks), "check template")))
    click.echo(f"{config_path}: ok: zone {cfg.zone}, provider {cfg.provider.type}, {counts}")
    exposed = cfg.controller.exposed()
    if exposed:
        click.echo(f"warning: {exposed}", err=True)
    if cfg.controller.cluster is not None and cfg.controller.cluster.etcd.in_clear():
        click.echo(f"warning: {cfg.controller.cluster.etcd.in_clear()}", err=True)
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


def _kept_state(cfg: Config) -> tuple[Any, dict[Any, Any], Any]:
    """The controller's latest health snapshot, decisions and active overrides from its
    state, when it has one (None, {}, no overrides otherwise)."""
    from failover.state import open_state
    from failover.state.store import as_overrides
    from policies import Overrides

    if not cfg.path(cfg.controller.state).exists():
        return None, {}, Overrides()
    from policies.stored import vet

    state = open_state(cfg)
    try:
        return (state.load_health(), vet(cfg, state.load_decisions(), time.time()).decisions,
                as_overrides(state.overrides(), time.time()))
    finally:
        state.close()


def _served_as_previous(cfg: Config, actual: list[Any], now: float) -> dict[Any, Any]:
    """For latency records, what DNS serves as if it were the last decision, so a plan
    without the controller's measurements keeps it instead of proposing to move it."""
    from policies.model import Decision

    served = {(r.name, r.type): r.values for r in actual}
    out = {}
    for rec in cfg.records:
        values = served.get((rec.name, rec.type))
        if rec.policy != "latency" or not values:
            continue
        for region in cfg.record_regions(rec):
            addresses = {ep.address.lower().rstrip(".") for _, ep in
                         cfg.endpoints_of(region, rec.pool)}
            if {v.lower().rstrip(".") for v in values} <= addresses:
                out[(rec.name, rec.type)] = Decision(
                    name=rec.name, type=rec.type, ttl=rec.ttl, policy="latency",
                    regions=(region,), values=tuple(values), shares={region: 1.0},
                    basis="health", reason="served", at=now)
                break
    return out


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


class PlanCommand(click.Command):
    """`plan` exits 0 (no changes), 2 (changes pending) or 1 (any error, an invalid config
    or bad arguments included), as `terraform plan -detailed-exitcode`, so a CI gate can
    tell "changes" from "broken"."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            exc.exit_code = EXIT_FAILURE  # type: ignore[misc]  # this command's code
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, FailoverError) as exc:
            exc.exit_code = EXIT_FAILURE  # type: ignore[misc]  # this command's code
            raise


@cli.command(cls=PlanCommand)
@config_option
@click.option("--assume", multiple=True, metavar="REGION=up|down",
              help="Plan as if every endpoint of REGION were up or down (repeatable).")
@click.option("--no-read", is_flag=True,
              help="Do not read DNS: plan against an empty zone (offline CI checks).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--markdown", is_flag=True, help="Markdown, for CI comments.")
def plan(config_path: str, assume: tuple[str, ...], no_read: bool, as_json: bool,
         markdown: bool) -> None:
    """Show what the controller would write now: exit 0 no changes, 2 changes pending,
    1 any error (an invalid config included).

    Health and latency come from the controller's state when there is one (its latest
    measurements and decisions); without one every endpoint counts as healthy and a
    latency record keeps what DNS serves."""
    from failover import plan as planning
    from failover.dns import make_adapter
    from failover.health import assume_regions, initial_snapshot
    from failover.reconcile import plan_step, read_actual

    if as_json and markdown:
        raise click.UsageError("choose one of --json and --markdown")
    cfg = _load(config_path)
    assumed = _parse_assume(cfg, assume)
    now = time.time()
    kept, previous, overrides = _kept_state(cfg)
    health = (f"health and latency from the controller's state ({now - kept.at:.0f} s old)"
              if kept is not None else "no controller state: every endpoint counted healthy, "
              "latency records keep what DNS serves")
    snapshot = assume_regions(kept or initial_snapshot(cfg, now), cfg, assumed, now)
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
    native = adapter.native_routing if adapter is not None else kind == "route53"
    if kept is None:
        previous = _served_as_previous(cfg, actual, now)
    step = plan_step(cfg, snapshot, overrides, previous, now, actual, ownership=kind != "none",
                     native=native, decorate=adapter.decorate if adapter else None)
    changes, blocked, refused = step.changes, step.blocked, step.violations
    if as_json:
        out = {**planning.to_json(changes), "provider": kind, "actual": source, "health": health,
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
        click.echo(f"zone {cfg.zone} (actual records {source}; {health})")
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


@cli.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Decide and plan, log what would change, write nothing.")
@click.option("--once", is_flag=True, help="One probe round and one reconcile, then exit.")
@click.option("--force", is_flag=True,
              help="Apply plans that break the safety guards (mass deletes, a name left empty).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Structured logs on stderr.")
def run(config_path: str, dry_run: bool, once: bool, force: bool, log_format: str) -> None:
    """Run the controller: probe, decide, write DNS, confirm, record why.

    SIGTERM stops after the tick in flight; SIGHUP reloads the config (an invalid one is
    refused and the running config stays).
    """
    import logging

    from failover.service import serve, setup_logging

    setup_logging(log_format)
    try:
        serve(config_path, dry_run=dry_run, once=once, force=force)
    except FailoverError as exc:
        if log_format != "json":
            raise
        # with JSON logs, the reason it stopped is a JSON line too
        logging.getLogger("failover").critical("event=stopped error=%r", str(exc))
        sys.exit(exc.exit_code)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--no-read", is_flag=True, help="Do not ask DNS what it serves.")
def status(config_path: str, as_json: bool, no_read: bool) -> None:
    """Regions, endpoints (health and reason), overrides, and per record the desired and
    the served answer."""
    from failover.controller import build_status
    from failover.health import initial_snapshot
    from failover.reconcile import record_keys
    from failover.service import adapter_for
    from failover.state import open_state

    cfg = _load(config_path)
    state = open_state(cfg)
    now = time.time()
    try:
        snapshot = state.load_health() or initial_snapshot(cfg, now)
        decisions = list(state.load_decisions().values())
        served: dict[tuple[str, str], list[str]] | None = None
        unknown: str | None = None
        if not no_read:
            try:  # DNS down or the secret unset: the state is still worth showing
                adapter = adapter_for(cfg)
                if adapter is not None:
                    served = {}
                    for r in adapter.served(record_keys(cfg)):
                        served[(r.name, r.type)] = list(r.values)
            except FailoverError as exc:
                served, unknown = None, str(exc)
        data = build_status(cfg, snapshot, state.overrides(), decisions, now, served=served)
        errors = state.history(now - 3600, limit=1, kind="error")
        if cfg.controller.cluster is not None:
            from failover.cluster.member import fleet_view
            from failover.state.etcd import EtcdState

            assert isinstance(state, EtcdState)
            data["cluster"] = fleet_view(state.client, cfg.controller.cluster.etcd.prefix,
                                         cfg.controller.cluster.vantages)
    finally:
        state.close()
    if unknown is not None:
        data["served_unknown"] = unknown
    if errors:
        data["last_error"] = {"at": errors[-1].at, "message": errors[-1].message}
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_status(data)


def _print_status(data: dict[str, Any]) -> None:
    from policies.reasons import clock

    click.echo(f"zone {data['zone']} (provider {data['provider']})")
    fleet = data.get("cluster")
    if fleet is not None:
        lead = fleet["leader"]
        click.echo("fleet: " + (f"leader {lead['vantage']} (host {lead['host']}, PID "
                                f"{lead['pid']}, epoch {lead['epoch']})" if lead else
                                "NO LEADER: nobody writes DNS"))
        for v in fleet["vantages"]:
            if "sees_down" not in v:
                click.echo(f"  vantage {v['vantage']!r}: NOT COUNTED: {v['why']}")
                continue
            sees = ("sees down: " + ", ".join(v["sees_down"])) if v["sees_down"] else \
                "sees every endpoint up"
            counted = "" if v.get("counted", True) else f" NOT COUNTED: {v['why']};"
            click.echo(f"  vantage {v['vantage']} (host {v['host']}, PID {v['pid']}):"
                       f"{counted} {sees}")
    if data.get("last_error"):
        e = data["last_error"]
        click.echo(f"last error (within the hour) at {clock(e['at'])}: {e['message']}")
    click.echo("\nregions:")
    for rname, region in data["regions"].items():
        state = ("drained" if region["drained"] else "") or (
            "healthy" if region["healthy"] else "UNHEALTHY")
        click.echo(f"  {rname}: {state}")
        for ep in region["endpoints"]:
            since = f" since {clock(ep['since'])}" if ep["since"] else ""
            health = "healthy" if ep["healthy"] else "UNHEALTHY"
            click.echo(f"    {ep['id']}: {health}{since}: {ep['reason']}")
    active = [o for o in data["overrides"] if o["active"]]
    click.echo("\noverrides:" + ("" if active else " none"))
    for o in active:
        what = f"drain {o['region']}" if o["kind"] == "drain" else f"pin {o['target']} to {o['region']}"
        until = (f", until {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(o['expires']))}"
                 if o.get("expires") else "")
        click.echo(f"  {what} by {o['who']} at {clock(o['at'])}{until}: {o['why']}")
    click.echo("\nrecords:" + ("" if data["records"] else " no decision yet (is the controller running?)"))
    unknown = data.get("served_unknown")
    for r in data["records"]:
        served = r.get("served")
        line = f"  {r['name']} {r['type']} {r['policy']}: desired {','.join(r['desired']) or '-'}"
        if unknown is not None:
            line += f", served: unknown ({unknown})"
        elif served is not None:
            line += f", served {','.join(served) or '-'}"
            if sorted(served) != sorted(r["desired"]):
                line += " (differs)"
        click.echo(line + f"\n      {r['reason']}")


@cli.command()
@config_option
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
@click.option("--for", "duration", metavar="DURATION",
              help="Expire after 30m, 2h30m, 1d... (at most a year; default: until restored).")
@click.option("--force", is_flag=True, help="Drain even if a record is left with no healthy region.")
def drain(config_path: str, region: str, reason: str, duration: str | None, force: bool) -> None:
    """Force REGION out of every answer (survives restarts)."""
    from failover import overrides

    now = time.time()
    expires = _expiry(duration, now)
    _with_state(config_path, lambda cfg, st: overrides.drain(
        cfg, st, region, why=reason or "drained", now=now, force=force, expires=expires))


@cli.command()
@config_option
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
def restore(config_path: str, region: str, reason: str) -> None:
    """Undo a drain of REGION."""
    from failover import overrides

    _with_state(config_path, lambda cfg, st: overrides.restore(
        cfg, st, region, now=time.time(), why=reason))


@cli.command()
@config_option
@click.argument("name")
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
@click.option("--for", "duration", metavar="DURATION",
              help="Expire after 30m, 2h30m, 1d... (at most a year; default: until unpinned).")
@click.option("--force", is_flag=True, help="Pin even to a region that is unhealthy or drained.")
def pin(config_path: str, name: str, region: str, reason: str, duration: str | None,
        force: bool) -> None:
    """Force record NAME (absolute, or relative to the zone) to answer from REGION,
    whatever its health."""
    from failover import overrides

    now = time.time()
    expires = _expiry(duration, now)
    _with_state(config_path, lambda cfg, st: overrides.pin(
        cfg, st, name, region, why=reason or "pinned", now=now, expires=expires, force=force))


@cli.command()
@config_option
@click.argument("name")
@click.option("--reason", default="", help="Why, for the history.")
def unpin(config_path: str, name: str, reason: str) -> None:
    """Undo a pin of record NAME."""
    from failover import overrides

    _with_state(config_path, lambda cfg, st: overrides.unpin(
        cfg, st, name, now=time.time(), why=reason))


TAKE_UP_WAIT = 5.0  # seconds the CLI waits for the running controller to take a change up


def _with_state(config_path: str, action: Any) -> None:
    """Apply an override change to the state, then say whether a controller took it up:
    "applied" only when the running controller answered, "saved" when none runs."""
    from failover.state import open_state, running_controller

    cfg = _load(config_path)
    state = open_state(cfg)
    cluster = cfg.controller.cluster
    try:
        message = action(cfg, state)
        who = running_controller(cfg)
        if who is None:
            where = (f"etcd {cluster.etcd.prefix} has no leader" if cluster is not None
                     else f"no controller is running on {cfg.path(cfg.controller.state)}")
            click.echo(f"{message}; saved: {where}, the next one to start applies it")
            return
        if _taken_up(state, time.monotonic() + TAKE_UP_WAIT):
            click.echo(f"{message}; applied by the running controller ({who})")
            return
    finally:
        state.close()
    click.echo(f"{message}; saved, but the running controller ({who}) has not taken it "
               f"up within {TAKE_UP_WAIT:g} s: check `failover status` and its log", err=True)
    sys.exit(EXIT_FAILURE)


def _taken_up(state: Any, deadline: float) -> bool:
    """Whether the controller's latest "overrides in force" event matches the overrides
    now in state (it records one whenever it takes a change up)."""
    while True:
        now = time.time()
        want = {(o.kind, o.target, o.at) for o in state.overrides() if o.active(now)}
        taken = [e for e in state.history(now - 86400, limit=50, kind="override")
                 if e.subject == "controller" and "in_force" in e.detail]
        if taken and want == {(o["kind"], o["target"], o["at"])
                              for o in taken[-1].detail["in_force"]}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _expiry(value: str | None, now: float) -> float | None:
    from failover.durations import expiry

    try:
        return expiry(value, None, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None


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


@cli.command()
@config_option
@click.option("--since", help="Only events newer than this: 10m, 2h30m, 1d, an ISO 8601 "
              "time (2026-11-23T10:00Z) or epoch seconds.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many events, the newest.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def history(config_path: str, since: str | None, limit: int, as_json: bool) -> None:
    """The event log: health changes, decisions, DNS writes, overrides, errors."""
    from failover.state import open_state

    cfg = _load(config_path)
    state = open_state(cfg)
    try:
        events = state.history(_parse_since(since), limit)
    finally:
        state.close()
    if as_json:
        click.echo(json.dumps([{"at": e.at, "kind": e.kind, "subject": e.subject,
                                "message": e.message, "detail": dict(e.detail)}
                               for e in events], indent=2))
        return
    for e in events:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
        about = "" if e.subject in e.message or e.subject in ("controller", "dns", "cli") else (
            f"{e.subject}: ")
        where = f"[{e.detail['vantage']}] " if e.detail.get("vantage") else ""  # a fleet
        click.echo(f"{stamp}Z {e.kind:<10} {where}{about}{e.message}")


@cli.command()
@config_option
@click.option("--scenario", "scenario_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=str), help="The scenario (YAML).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def simulate(config_path: str, scenario_path: str, as_json: bool) -> None:
    """Replay a scenario on a virtual clock through the real health and policy code and
    print the DNS timeline; exit 2 when an expectation fails."""
    from pathlib import Path

    from failover import simulate as sim

    cfg = _load(config_path)
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


@cli.command()
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
    authoritative server."""
    from failover import drill as drills
    from failover.dns.authoritative import authoritative_servers
    from failover.service import adapter_for
    from failover.state import open_state

    cfg = _load(config_path)
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
    click.echo(f"drill of {region} ({mode}) on {len(watch)} authoritative server(s) from "
               f"{source}: every answer moved in {report['total_s']} s, "
               f"back in {report['back_total_s']} s")
    for r in report["records"]:
        click.echo(f"  {r['record']}: detection {r['detection_s']} s, write {r['write_s']} s, "
                   f"served {r['served_s']} s, total {r['total_s']} s; back {r['back_s']} s")
        for server, t in r["servers"].items():
            click.echo(f"    {server}: served {t['served_s']} s, back {t['back_s']} s")


def _check_servers(values: tuple[str, ...]) -> None:
    """--server values: exit 2 naming the bad one."""
    from pydantic import ValidationError

    from failover.config import DrillSettings

    try:
        DrillSettings(servers=list(values))
    except ValidationError as exc:
        bad = values[int(exc.errors()[0]["loc"][1])]
        raise click.BadParameter(exc.errors()[0]["msg"], param_hint=f"--server {bad!r}") from None


@cli.command()
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
