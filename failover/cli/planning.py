"""`plan`: what the controller would write now, from the config, the controller's kept
state and what DNS serves, as a table, Markdown or JSON, with the exit codes of
`terraform plan -detailed-exitcode`."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from failover.cli.group import EXIT_FAILURE, EXIT_INPUT, EXIT_OK, config_option, read_config
from failover.errors import FailoverError

if TYPE_CHECKING:
    from failover.config import Config
    from failover.reconcile import Planned
    from failover.records import RecordSet


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
    from policies.model import Decision, decision_key

    served = {(r.name, r.type, r.set_identifier or ""): r.values for r in actual}
    out = {}
    for rec in cfg.records:
        for net in cfg.network_names or ("",):
            values = served.get((rec.name, rec.type, net))
            if rec.policy != "latency" or not values:
                continue
            for region in cfg.record_regions(rec):
                addresses = {ep.address.lower().rstrip(".") for _, ep in
                             cfg.endpoints_of(region, rec.pool)}
                if {v.lower().rstrip(".") for v in values} <= addresses:
                    out[decision_key(rec.name, rec.type, net)] = Decision(
                        name=rec.name, type=rec.type, ttl=rec.ttl, policy="latency",
                        regions=(region,), values=tuple(values), shares={region: 1.0},
                        basis="health", reason="served", at=now, network=net)
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


@click.command(cls=PlanCommand)
@config_option
@click.option("--assume", multiple=True, metavar="REGION=up|down",
              help="Plan as if every endpoint of REGION were up or down (repeatable).")
@click.option("--no-read", is_flag=True,
              help="Do not read DNS: plan against an empty zone (offline CI checks).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@click.option("--markdown", is_flag=True, help="Markdown, for CI comments.")
@click.option("--network", metavar="NETWORK",
              help="Only this client network's answers and changes (networks:).")
@click.option("--adopt", is_flag=True,
              help="As ownership.adopt: true: names holding records nobody marked, already "
                   "as the config asks, get their markers and nothing else.")
def plan(config_path: str, assume: tuple[str, ...], no_read: bool, as_json: bool,
         markdown: bool, network: str | None, adopt: bool) -> None:
    """Show what the controller would write now: exit 0 no changes, 2 changes pending,
    1 any error (an invalid config included).

    Health and latency come from the controller's state when there is one (its latest
    measurements and decisions); without one every endpoint counts as healthy and a
    latency record keeps what DNS serves."""
    from failover import plan as planning
    from failover.caveats import closed_warnings, weight_warnings
    from failover.config import network_notes
    from failover.dns import make_adapter
    from failover.health import assume_regions, initial_snapshot
    from failover.reconcile import plan_step, read_actual

    if as_json and markdown:
        raise click.UsageError("choose one of --json and --markdown")
    cfg = read_config(config_path)
    if adopt:
        cfg = cfg.model_copy(update={"ownership": cfg.ownership.model_copy(
            update={"adopt": True})})
    assumed = _parse_assume(cfg, assume)
    if network is not None and network not in cfg.networks:
        known = ", ".join(cfg.networks) or "none: the config defines no networks"
        raise click.BadParameter(f"unknown network '{network}' (networks: {known})",
                                 param_hint="--network")
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
    decisions = step.decisions
    if network is not None:  # one network's answers: its view's or location's record sets
        decisions = [d for d in decisions if d.network == network]
        changes = changes.only(c for c in changes.changes
                               if c.record.set_identifier in (network, None))
    unread = "provider none" if kind == "none" else "--no-read" if no_read else source
    warnings = (weight_warnings(cfg) + closed_warnings(cfg, _negative_ttls(cfg, adapter, unread))
                + network_notes(cfg))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    left = _left_in_dns(step, actual)
    if as_json:
        out = {**planning.to_json(changes), "provider": kind, "actual": source, "health": health,
               "assumed": {r: "up" if up else "down" for r, up in assumed.items()},
               "decisions": [d.to_dict() for d in decisions], "blocked": blocked,
               "refused": refused, "warnings": warnings, "removed_from_config": left,
               "adopted": step.adopted}
        click.echo(json.dumps(out, indent=2))
    elif markdown:
        click.echo("### failover plan for " + ", ".join(f"`{z.zone}`" for z in cfg.zone_specs)
                   + "\n")
        for d in decisions:
            where = f", network {d.network}" if d.network else ""
            click.echo(f"- `{d.name}` {d.type} ({d.policy}{where}): {d.reason}")
        click.echo("\n" + planning.to_markdown(changes))
        if step.adopted:
            click.echo(f"\n> **adopted:** {_adopted_text(step.adopted, '`')}")
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
        for d in decisions:
            answer = ",".join(d.values) or "(no answer)"
            where = f" [{d.network}]" if d.network else ""
            click.echo(f"  {d.name} {d.type}{where} {d.policy}: {answer}\n      {d.reason}")
        click.echo("")
        click.echo(planning.to_table(changes))
        if step.adopted:
            click.echo(f"adopted: {_adopted_text(step.adopted)}")
        for name, why in blocked.items():
            click.echo(f"left alone: {name} {why}")
        for item in left:
            held = "; ".join(f"{r['type']} {','.join(r['values'])}" for r in item["records"])
            click.echo(f"left in DNS, no longer in the config: {item['name']} "
                       f"({held or 'its marker only'}) {item['note']}")
        for v in refused:
            click.echo(f"refused by safety guard: {v}")
    sys.exit(EXIT_INPUT if changes else EXIT_OK)


def _adopted_text(names: list[str], quote: str = "") -> str:
    """The names adopted (ownership.adopt): their markers are all the plan writes."""
    shown = ", ".join(f"{quote}{n}{quote}" for n in names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return (f"{len(names)} name(s) holding records nobody marked, already as the config "
            f"asks: only their ownership markers are written ({shown}{more})")


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
