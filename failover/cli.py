"""The `failover` command line. Heavy modules load inside commands: `--help` stays fast."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from failover.errors import ConfigError, FailoverError, InputError

if TYPE_CHECKING:
    from failover.config import Config
    from failover.reconcile import Planned
    from failover.records import RecordSet

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
    from failover.caveats import closed_warnings, weight_warnings
    from failover.config import secret_file_exposed
    from failover.errors import SecretMissing

    cfg = _load(config_path)
    endpoints = len(cfg.all_endpoints())
    counts = ", ".join(_count(n, what) for n, what in (
        (len(cfg.records), "record"), (len(cfg.regions), "region"), (endpoints, "endpoint"),
        (len(cfg.checks), "check template")))
    zones = (f"zone {cfg.zone}, provider {cfg.provider.type}" if len(cfg.zone_specs) == 1
             else "zones " + ", ".join(f"{z.zone} (provider {z.provider.type})"
                                       for z in cfg.zone_specs))
    click.echo(f"{config_path}: ok: {zones}, {counts}")
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
    try:
        cfg.api_token()
    except SecretMissing as exc:
        click.echo(f"warning: {exc} (needed before the controller can start)", err=True)
    for path in cfg.secret_files():
        exposed = secret_file_exposed(path)
        if exposed is not None:
            click.echo(f"warning: {exposed}", err=True)
    # validate reads no DNS: the closed warning names the negative TTL without its figure
    for warning in weight_warnings(cfg) + closed_warnings(cfg):
        click.echo(f"warning: {warning}", err=True)


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
    from failover.caveats import closed_warnings, weight_warnings
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
    unread = "provider none" if kind == "none" else "--no-read" if no_read else source
    warnings = weight_warnings(cfg) + closed_warnings(cfg, _negative_ttls(cfg, adapter, unread))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    left = _left_in_dns(step, actual)
    if as_json:
        out = {**planning.to_json(changes), "provider": kind, "actual": source, "health": health,
               "assumed": {r: "up" if up else "down" for r, up in assumed.items()},
               "decisions": [d.to_dict() for d in step.decisions], "blocked": blocked,
               "refused": refused, "warnings": warnings, "removed_from_config": left}
        click.echo(json.dumps(out, indent=2))
    elif markdown:
        click.echo("### failover plan for " + ", ".join(f"`{z.zone}`" for z in cfg.zone_specs)
                   + "\n")
        for d in step.decisions:
            click.echo(f"- `{d.name}` {d.type} ({d.policy}): {d.reason}")
        click.echo("\n" + planning.to_markdown(changes))
        for name, why in blocked.items():
            click.echo(f"\n> **left alone:** `{name}` {why}")
        for item in left:
            click.echo(f"\n> **left in DNS, no longer in the config:** `{item['name']}` "
                       f"{item['note']}")
        for v in refused:
            click.echo(f"\n> **refused by safety guard:** {v}")
        for warning in warnings:
            click.echo(f"\n> **warning:** {warning}")
    else:
        click.echo(("zone " if len(cfg.zone_specs) == 1 else "zones ")
                   + ", ".join(z.zone for z in cfg.zone_specs)
                   + f" (actual records {source}; {health})")
        for d in step.decisions:
            answer = ",".join(d.values) or "(no answer)"
            click.echo(f"  {d.name} {d.type} {d.policy}: {answer}\n      {d.reason}")
        click.echo("")
        click.echo(planning.to_table(changes))
        for name, why in blocked.items():
            click.echo(f"left alone: {name} {why}")
        for item in left:
            held = "; ".join(f"{r['type']} {','.join(r['values'])}" for r in item["records"])
            click.echo(f"left in DNS, no longer in the config: {item['name']} "
                       f"({held or 'its marker only'}) {item['note']}")
        for v in refused:
            click.echo(f"refused by safety guard: {v}")
    sys.exit(EXIT_INPUT if changes else EXIT_OK)


def _negative_ttls(cfg: Config, adapter: Any, unread: str) -> dict[str, Any]:
    """Each zone's negative TTL, read from DNS, for the zones that have records failing
    closed; why not, when it was not read (`unread` when there is no adapter)."""
    from failover.dns.base import DnsError
    from failover.dns.negative import read_negative_ttl

    zones = {cfg.zone_of(r.name) or cfg.zone for r in cfg.records if r.fail_mode == "closed"}
    out: dict[str, Any] = {}
    for spec in cfg.zone_specs:
        if spec.zone not in zones:
            continue
        if adapter is None:
            out[spec.zone] = unread
            continue
        try:
            known = read_negative_ttl(spec, adapter)
        except DnsError as exc:
            out[spec.zone] = str(exc)
            continue
        out[spec.zone] = known if known is not None else f"provider {spec.provider.type}"
    return out


def _left_in_dns(step: Planned, actual: list[RecordSet]) -> list[dict[str, Any]]:
    """The names this controller marked that left the config, with what they hold and
    what becomes of them (deleted with their markers, or kept by ownership.prune: false)."""
    names = {n: "delete" for n in step.pruned} | {n: "keep" for n in step.kept}
    held: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rs in actual:
        if rs.name in held:
            held[rs.name].append(rs.to_dict())
    notes = {"delete": "deleted with its marker (ownership.prune)",
             "keep": "kept, unmonitored (ownership.prune: false)"}
    return [{"name": n, "action": a, "note": notes[a], "records": held[n]}
            for n, a in sorted(names.items())]


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


@cli.command()
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


STALE_STATE = 30.0  # seconds: a running controller saves its health every 10 s


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--no-read", is_flag=True, help="Do not ask DNS what it serves.")
def status(config_path: str, as_json: bool, no_read: bool) -> None:
    """Regions, endpoints (health and reason), overrides, and per record the desired and
    the served answer.

    Read from the state; when the state is behind the running controller (it cannot
    write it, or it cannot be read), that is said, and the controller's own /status is
    shown when it answers."""
    from failover.service import adapter_for

    cfg = _load(config_path)
    now = time.time()
    served: dict[tuple[str, str], list[str]] | None = None
    unknown: str | None = None
    if not no_read:
        try:  # DNS down or the secret unset: the state is still worth showing
            adapter = adapter_for(cfg)
            if adapter is not None:
                from failover.reconcile import record_keys

                served = {}
                for r in adapter.served(record_keys(cfg)):
                    served[(r.name, r.type)] = list(r.values)
        except FailoverError as exc:
            served, unknown = None, str(exc)
    data: dict[str, Any] | None = None
    kept_at: float | None = None
    unreadable: FailoverError | None = None
    try:
        data, kept_at = _status_from_state(cfg, now, served)
    except InputError:
        raise
    except FailoverError as exc:  # corrupt, or unreadable: the controller may still answer
        unreadable = exc
    live, stale = _live_if_stale(cfg, kept_at, now, unreadable)
    if live is not None:
        data = live
        if served is not None:  # what DNS serves, as this command read it
            for r in data.get("records", []):
                r["served"] = served.get((r["name"], r["type"]), [])
    assert data is not None  # _live_if_stale raised otherwise
    if stale is not None:
        data["stale_state"] = stale
    if unknown is not None:
        data["served_unknown"] = unknown
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_status(data)


def _status_from_state(cfg: Config, now: float, served: dict[tuple[str, str], list[str]] | None
                       ) -> tuple[dict[str, Any], float | None]:
    """Status as the state holds it, and when its health was saved (None: never)."""
    from failover.controller import build_status
    from failover.health import initial_snapshot
    from failover.state import open_state

    state = open_state(cfg)
    try:
        kept = state.load_health()
        snapshot = kept or initial_snapshot(cfg, now)
        decisions = list(state.load_decisions().values())
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
    if errors:
        data["last_error"] = {"at": errors[-1].at, "message": errors[-1].message}
    return data, kept.at if kept is not None else None


def _live_if_stale(cfg: Config, kept_at: float | None, now: float,
                   unreadable: FailoverError | None) -> tuple[dict[str, Any] | None, str | None]:
    """When the state is behind the running controller (one process): the controller's
    /status to show instead (None when it does not answer), and why the state is stale.
    Raises `unreadable` when the state could not be read and nothing else can be shown."""
    from failover import apiclient
    from failover.state import controller_pid

    pid = controller_pid(cfg) if cfg.controller.cluster is None else None
    if pid is None:
        if unreadable is not None:
            raise unreadable
        return None, None
    if unreadable is not None:
        why = str(unreadable)
    elif apiclient.failing_state(cfg) is not None:  # /readyz: small, whatever the zone
        why = "the running controller cannot write it"
    elif kept_at is not None and now - kept_at > STALE_STATE:
        why = f"health last saved {now - kept_at:.0f} s ago"
    else:
        return None, None
    live = apiclient.live_status(cfg)
    url = apiclient.base_url(cfg)
    if live is None:
        if unreadable is not None:
            raise FailoverError(f"{unreadable}; the running controller (PID {pid}) does not "
                                f"answer at {url}") from None
        return None, (f"the state is stale ({why}) and the running controller (PID {pid}) "
                      f"does not answer at {url}: what follows may be out of date")
    return live, (f"the state is stale ({why}): shown is the running controller's own "
                  f"/status (PID {pid}, {url})")


def _print_status(data: dict[str, Any]) -> None:
    from failover import readout
    from policies.reasons import clock

    zones = data.get("zones") or [{"zone": data["zone"], "provider": data["provider"]}]
    click.echo(", ".join(f"zone {z['zone']} (provider {z['provider']})" for z in zones))
    if data.get("stale_state"):
        click.echo(f"STALE STATE: {data['stale_state']}")
    # the running controller's problems, when shown, and the records without a usable region
    for problem in [*readout.all_out(data["records"]), *data.get("problems", [])]:
        click.echo(f"problem: {problem}")
    fleet = data.get("cluster")
    if fleet is not None:
        lead = fleet["leader"]
        click.echo("fleet: " + (f"leader {lead['vantage']} (host {lead['host']}, PID "
                                f"{lead['pid']}, epoch {lead['epoch']})" if lead else
                                "NO LEADER: nobody writes DNS"))
        for v in fleet["vantages"]:
            if v.get("live") is False:
                click.echo(f"  vantage {v['vantage']}: EXPIRED at {clock(v['expired_at'])}: "
                           f"{v['note']}")
                continue
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
        kind, words = readout.region_state(region)
        click.echo(f"  {rname}: {'drained' if kind == 'drained' else words}")
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
        zone = f" (zone {r['zone']})" if r.get("zone") else ""
        line = (f"  {r['name']} {r['type']} {r['policy']}{zone}: "
                f"desired {','.join(r['desired']) or '-'}")
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
    why = reason or "drained"
    _with_state(config_path, "drain", {"region": region, "reason": why, "force": force,
                                       "expires": expires},
                lambda cfg, st: overrides.drain(cfg, st, region, why=why, now=now,
                                                force=force, expires=expires))


@cli.command()
@config_option
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
def restore(config_path: str, region: str, reason: str) -> None:
    """Undo a drain of REGION."""
    from failover import overrides

    _with_state(config_path, "restore", {"region": region, "reason": reason},
                lambda cfg, st: overrides.restore(cfg, st, region, now=time.time(), why=reason))


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
    why = reason or "pinned"
    _with_state(config_path, "pin", {"name": name, "region": region, "reason": why,
                                     "force": force, "expires": expires},
                lambda cfg, st: overrides.pin(cfg, st, name, region, why=why, now=now,
                                              expires=expires, force=force))


@cli.command()
@config_option
@click.argument("name")
@click.option("--reason", default="", help="Why, for the history.")
def unpin(config_path: str, name: str, reason: str) -> None:
    """Undo a pin of record NAME."""
    from failover import overrides

    _with_state(config_path, "unpin", {"name": name, "reason": reason},
                lambda cfg, st: overrides.unpin(cfg, st, name, now=time.time(), why=reason))


TAKE_UP_WAIT = 5.0  # seconds the CLI waits for the running controller to take a change up


def _with_state(config_path: str, action: str, body: dict[str, Any], make: Any) -> None:
    """Write an override change (`make(cfg, state)`) to the state, then say whether a
    controller took it up: "applied" only when the running controller answered, "saved"
    when none runs. When the state cannot be written (a full or read-only disk, a corrupt
    file), nothing is changed, and a running controller is asked to take the change over
    its API (it holds it in memory until its state can be written)."""
    from failover import apiclient
    from failover.state import controller_pid, running_controller

    cfg = _load(config_path)
    c = cfg.controller
    if (c.cluster is None and (c.token_env or c.token_file)
            and controller_pid(cfg) is not None):
        # the controller cannot write its state: it may hold changes the file lacks (a
        # drain this restore undoes), so it is the one to ask
        failing = apiclient.failing_state(cfg)
        if failing is not None:
            try:
                _through_controller(cfg, action, body, "its state file cannot be written")
                return
            except InputError:  # the controller refused the change itself
                raise
            except FailoverError:
                pass  # its API cannot be used from here: the state is written if it can be
    try:
        message, state = _write(cfg, make)
    except InputError:
        raise
    except FailoverError as exc:  # the change is not in the state, nor its history line
        _through_controller(cfg, action, body,
                            f"this command could not write the state: {exc}", exc)
        return
    cluster = cfg.controller.cluster
    try:
        who = running_controller(cfg)
        if who is None:
            where = (f"etcd {cluster.etcd.prefix} has no leader" if cluster is not None
                     else f"no controller is running on {cfg.path(cfg.controller.state)}")
            click.echo(f"{message}; saved: {where}, the next one to start applies it")
            return
        taken = _taken_up(cfg, state, time.monotonic() + TAKE_UP_WAIT)
        if taken is not None:
            click.echo(f"{message}; applied by the running controller ({who}){taken}")
            return
    finally:
        state.close()
    served = _drained_in_dns(cfg, body["region"]) if action == "drain" else None
    if served is not None:  # the controller's acknowledgement is late, the answers are not
        click.echo(f"{message}; saved, and DNS already serves {served}, though the running "
                   f"controller ({who}) has not acknowledged it within {TAKE_UP_WAIT:g} s")
        return
    click.echo(f"{message}; saved, but the running controller ({who}) has not taken it "
               f"up within {TAKE_UP_WAIT:g} s: check `failover status` and its log", err=True)
    sys.exit(EXIT_FAILURE)


def _drained_in_dns(cfg: Config, region: str) -> str | None:
    """What DNS serves when every record's answer is already without `region` (as
    "NAME TYPE without REGION"); None when one still answers from it, or DNS cannot say."""
    from failover.drill import region_values
    from failover.reconcile import record_keys
    from failover.service import adapter_for

    try:
        adapter = adapter_for(cfg)
        if adapter is None:
            return None
        served = {(r.name, r.type): frozenset(r.values) for r in adapter.served(record_keys(cfg))}
    except FailoverError:
        return None
    keys = [(r.name, r.type) for r in cfg.records]
    if any(not served.get(k) or served[k] & region_values(cfg, region, k) for k in keys):
        return None
    return ", ".join(f"{name} {rtype}" for name, rtype in keys) + f" without {region}"


def _write(cfg: Config, make: Any) -> tuple[str, Any]:
    """The change `make(cfg, state)` written, and the state, still open (closed when
    this raises)."""
    from failover import overrides
    from failover.state import open_state

    state = open_state(cfg)
    try:
        return overrides.commit(state, make(cfg, state)), state
    except BaseException:
        state.close()
        raise


def _through_controller(cfg: Config, action: str, body: dict[str, Any], why: str,
                        unwritten: FailoverError | None = None) -> None:
    """Hand a change to the running controller (one process) over its API, `why` the
    state is not written directly (`unwritten`: the error of the write tried); raises
    FailoverError, saying that nothing changed, when it cannot be."""
    from failover import apiclient
    from failover.overrides import who
    from failover.state import controller_pid
    from failover.state.sqlite import StateCorrupt

    nothing = f"nothing changed: {unwritten or why}"
    if cfg.controller.cluster is not None:
        raise FailoverError(nothing)
    pid = controller_pid(cfg)
    if pid is None:
        if isinstance(unwritten, StateCorrupt):
            raise FailoverError(f"{nothing}; start the controller, then do it again")
        raise FailoverError(f"{nothing}; no controller is running to hold the change in "
                            "memory: make room for the state (or make it writable) and "
                            "try again")
    try:
        answer = apiclient.send_change(cfg, action, {**body, "by": who()})
    except InputError:
        raise
    except FailoverError as exc:
        room = "" if isinstance(unwritten, StateCorrupt) else "; make room for the state and try again"
        raise FailoverError(f"{nothing}{room} (the running controller, PID {pid}, would hold "
                            f"the change in memory, but {exc})") from None
    click.echo(f"{answer} (through the API of the running controller, PID {pid}: {why})")


def _taken_up(cfg: Config, state: Any, deadline: float) -> str | None:
    """Whether the running controller took the overrides now in state up: its latest
    "overrides in force" event matches them (it records one whenever it takes a change
    up), or, while it cannot write its history (its state failing), its /status shows
    them. None when neither within the deadline; else what to add to "applied"."""
    from failover import apiclient

    asked = time.monotonic()  # /status only if the history has not said so within 1 s
    while True:
        now = time.time()
        want = {(o.kind, o.target, o.at) for o in state.overrides() if o.active(now)}
        taken = [e for e in state.history(now - 86400, limit=50, kind="override")
                 if e.subject == "controller" and "in_force" in e.detail]
        if taken and want == {(o["kind"], o["target"], o["at"])
                              for o in taken[-1].detail["in_force"]}:
            return ""
        if cfg.controller.cluster is None and time.monotonic() - asked >= 1.0:
            asked = time.monotonic()
            live = apiclient.live_status(cfg, timeout=1.0) or {}
            failing = apiclient.state_problems(live)
            shown = {(o["kind"], o["target"], o["at"]) for o in live.get("overrides", [])
                     if o["active"]}
            if failing and shown == want:
                return (f", which cannot record it in its history while its state cannot "
                        f"be written ({failing[0]})")
        if time.monotonic() >= deadline:
            return None
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
                   f"served {r['served_s']} s, total {r['total_s']} s; back {r['back_s']} s; "
                   f"behind resolvers up to {r['behind_resolvers_s']} s (TTL {r['ttl']} s)")
        for server, t in r["servers"].items():
            click.echo(f"    {server}: served {t['served_s']} s, back {t['back_s']} s")
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
        click.echo(f"invalid {exc.what} ({n} problem{'s' if n != 1 else ''}):", err=True)
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)
    except FailoverError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
