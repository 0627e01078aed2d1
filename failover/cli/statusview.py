"""`status`: regions, endpoints, overrides, the fleet and per record the desired and the
served answer, from the state, or from the running controller's /status when the
state is behind it."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from failover.cli.group import config_option, read_config
from failover.errors import FailoverError, InputError

if TYPE_CHECKING:
    from failover.config import Config
    from failover.state.etcd import EtcdState


STALE_STATE = 30.0  # seconds: a running controller saves its health every 10 s


@click.command()
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

    cfg = read_config(config_path)
    now = time.time()
    served: dict[tuple[str, ...], list[str]] | None = None
    unknown: str | None = None
    if not no_read:
        try:  # DNS down or the secret unset: the state is still worth showing
            adapter = adapter_for(cfg)
            if adapter is not None:
                from failover.reconcile import record_keys

                served = {}
                for r in adapter.served(record_keys(cfg)):
                    # a view's answer is its network's (set identifier: the network)
                    key = (r.name, r.type) + ((r.set_identifier,) if r.set_identifier else ())
                    served[key] = list(r.values)
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
    live: dict[str, Any] | None
    stale: str | None
    failed: tuple[tuple[str, str], ...] = ()  # the etcd members asked, and why they failed
    if cfg.controller.cluster is not None and unreadable is not None:
        from failover.cluster.etcd import EtcdUnavailable

        live, stale = _fleet_without_etcd(cfg, unreadable)
        if isinstance(unreadable, EtcdUnavailable):
            failed = unreadable.failed
    else:
        live, stale = _live_if_stale(cfg, kept_at, now, unreadable)
    if live is not None:
        data = live
        if served is not None:  # what DNS serves, as this command read it
            for r in data.get("records", []):
                net = (r["network"],) if r.get("network") else ()
                r["served"] = served.get((r["name"], r["type"], *net), [])
    assert data is not None  # _live_if_stale raised otherwise
    if stale is not None:
        data["stale_state"] = stale
    if unknown is not None:
        data["served_unknown"] = unknown
    if failed:
        data["etcd_failed"] = [{"member": member, "error": why} for member, why in failed]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print_status(data)


def _status_from_state(cfg: Config, now: float, served: dict[tuple[str, ...], list[str]] | None
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
            fleet = fleet_view(state.client, cfg.controller.cluster.etcd.prefix,
                               cfg.controller.cluster.vantages)
            fleet["vantages"] += _expired_vantages(state, cfg.controller.cluster.vantages or [],
                                                   {v["vantage"] for v in fleet["vantages"]})
            data["cluster"] = fleet
    finally:
        state.close()
    if errors:
        data["last_error"] = {"at": errors[-1].at, "message": errors[-1].message}
    return data, kept.at if kept is not None else None


def _expired_vantages(state: EtcdState, vantages: list[str], listed: set[str]
                      ) -> list[dict[str, Any]]:
    """The fleet's vantages (`vantages`) without a view in etcd (`listed`: those with one)
    that ran once: their view expired with their lease. Each with when it was last seen
    (its last health save); a vantage that never saved its health never ran, and is left
    out."""
    out = []
    for vantage in vantages:
        if vantage in listed:
            continue
        seen = state.health_saved_at(vantage)
        if seen is not None:
            out.append({"vantage": vantage, "live": False, "last_seen": seen,
                        "note": "its view expired with its lease: not counted"})
    return out


def _fleet_without_etcd(cfg: Config, unreadable: FailoverError) -> tuple[dict[str, Any], str]:
    """When etcd cannot be read (no member answers, or none has quorum): the /status of
    the fleet's instance on this machine (`controller.listen`), and why it is shown.
    Raises FailoverError, saying what failed, when that instance does not answer either."""
    from failover import apiclient
    from failover.cluster.etcd import EtcdUnavailable

    why = ("etcd unreachable or without quorum: no instance can be elected or write DNS"
           if isinstance(unreadable, EtcdUnavailable) else "etcd cannot be read")
    live = apiclient.live_status(cfg)
    url = apiclient.base_url(cfg)
    if live is None:
        raise FailoverError(f"{unreadable} ({why}); no instance of the fleet answers on "
                            f"this machine at {url}") from None
    vantage = (live.get("cluster") or {}).get("vantage", "?")
    return live, (f"{why}: shown is the own /status of this machine's instance (vantage "
                  f"{vantage}, {url}), as it last saw the fleet")


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
    for failed in data.get("etcd_failed", []):
        click.echo(f"etcd member {failed['member']} failed: {failed['error']}")
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
                click.echo(f"  vantage {v['vantage']}: EXPIRED{_expired_when(v)}: {v['note']}")
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
        target, _, net = o["target"].partition("@")
        scope = f" (network {net})" if net else ""
        what = (f"drain {o['region']}{scope}" if o["kind"] == "drain"
                else f"pin {target}{scope} to {o['region']}")
        until = (f", until {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(o['expires']))}"
                 if o.get("expires") else "")
        click.echo(f"  {what} by {o['who']} at {clock(o['at'])}{until}: {o['why']}")
    click.echo("\nrecords:" + ("" if data["records"] else " no decision yet (is the controller running?)"))
    unknown = data.get("served_unknown")
    for r in data["records"]:
        served = r.get("served")
        zone = f" (zone {r['zone']})" if r.get("zone") else ""
        net = f" [{r['network']}]" if r.get("network") else ""
        line = (f"  {r['name']} {r['type']}{net} {r['policy']}{zone}: "
                f"desired {','.join(r['desired']) or '-'}")
        if unknown is not None:
            line += f", served: unknown ({unknown})"
        elif served is not None:
            line += f", served {','.join(served) or '-'}"
            if sorted(served) != sorted(r["desired"]):
                line += " (differs)"
        click.echo(line + f"\n      {r['reason']}")


def _expired_when(vantage: dict[str, Any]) -> str:
    """When an expired vantage's view expired (as its fleet's instance saw it), else when
    it was last seen (its last health save in etcd), as words; "" when neither is known."""
    from policies.reasons import clock

    if vantage.get("expired_at") is not None:
        return f" at {clock(vantage['expired_at'])}"
    seen = vantage.get("last_seen")
    if seen is None:
        return ""
    ago = max(0.0, time.time() - seen)
    words = (f"{ago:.0f} s" if ago < 120 else f"{ago / 60:.0f} min" if ago < 7200 else
             f"{ago / 3600:.0f} h" if ago < 172800 else f"{ago / 86400:.0f} d")
    return f", last seen {words} ago (at {clock(seen)})"
