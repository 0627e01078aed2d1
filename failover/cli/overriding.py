"""The operator's overrides, `drain`, `restore`, `pin` and `unpin`: the change written to
the state (or handed to the running controller over its API when the state cannot be
written), then whether the running controller took it up."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from failover.cli.group import EXIT_FAILURE, config_option, read_config
from failover.errors import FailoverError, InputError

if TYPE_CHECKING:
    from failover.config import Config


network_option = click.option(
    "--network", metavar="NETWORK",
    help="One client network only (networks:); default: every network.")


def _net(network: str | None) -> dict[str, str]:
    """The API body's network, when one is given."""
    return {"network": network} if network else {}


@click.command()
@config_option
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
@click.option("--for", "duration", metavar="DURATION",
              help="Expire after 30m, 2h30m, 1d... (at most a year; default: until restored).")
@click.option("--force", is_flag=True, help="Drain even if a record is left with no healthy region.")
@network_option
def drain(config_path: str, region: str, reason: str, duration: str | None, force: bool,
          network: str | None) -> None:
    """Force REGION out of every answer, or of one client network's (survives restarts)."""
    from failover import overrides

    now = time.time()
    expires = _expiry(duration, now)
    why = reason or "drained"
    _with_state(config_path, "drain", {"region": region, "reason": why, "force": force,
                                       "expires": expires, **_net(network)},
                lambda cfg, st: overrides.drain(cfg, st, region, why=why, now=now,
                                                force=force, expires=expires,
                                                network=network))


@click.command()
@config_option
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
@network_option
def restore(config_path: str, region: str, reason: str, network: str | None) -> None:
    """Undo a drain of REGION (of every network, or the one given)."""
    from failover import overrides

    _with_state(config_path, "restore", {"region": region, "reason": reason, **_net(network)},
                lambda cfg, st: overrides.restore(cfg, st, region, now=time.time(), why=reason,
                                                  network=network))


@click.command()
@config_option
@click.argument("name")
@click.argument("region")
@click.option("--reason", default="", help="Why, for the history.")
@click.option("--for", "duration", metavar="DURATION",
              help="Expire after 30m, 2h30m, 1d... (at most a year; default: until unpinned).")
@click.option("--force", is_flag=True, help="Pin even to a region that is unhealthy or drained.")
@network_option
def pin(config_path: str, name: str, region: str, reason: str, duration: str | None,
        force: bool, network: str | None) -> None:
    """Force record NAME (absolute, or relative to the zone) to answer from REGION,
    whatever its health (for every client network, or the one given)."""
    from failover import overrides

    now = time.time()
    expires = _expiry(duration, now)
    why = reason or "pinned"
    _with_state(config_path, "pin", {"name": name, "region": region, "reason": why,
                                     "force": force, "expires": expires, **_net(network)},
                lambda cfg, st: overrides.pin(cfg, st, name, region, why=why, now=now,
                                              expires=expires, force=force, network=network))


@click.command()
@config_option
@click.argument("name")
@click.option("--reason", default="", help="Why, for the history.")
@network_option
def unpin(config_path: str, name: str, reason: str, network: str | None) -> None:
    """Undo a pin of record NAME (of every network, or the one given)."""
    from failover import overrides

    _with_state(config_path, "unpin", {"name": name, "reason": reason, **_net(network)},
                lambda cfg, st: overrides.unpin(cfg, st, name, now=time.time(), why=reason,
                                                network=network))


TAKE_UP_WAIT = 5.0  # seconds the CLI waits for the running controller to take a change up


def _with_state(config_path: str, action: str, body: dict[str, Any], make: Any) -> None:
    """Write an override change (`make(cfg, state)`) to the state, then say whether a
    controller took it up: "applied" only when the running controller answered, "saved"
    when none runs. When the state cannot be written (a full or read-only disk, a corrupt
    file), nothing is changed, and a running controller is asked to take the change over
    its API (it holds it in memory until its state can be written)."""
    from failover import apiclient
    from failover.state import controller_pid, running_controller

    cfg = read_config(config_path)
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
        try:  # as the state holds them once the controller was waited for
            in_force = [o for o in state.overrides() if o.active(time.time())]
        except FailoverError:
            in_force = None
    finally:
        state.close()
    # DNS is read unsigned, as a resolver: one network's answer only without networks
    served = (_already_in_dns(cfg, action, body.get("region", ""), in_force)
              if not cfg.networks else None)
    if served is not None:  # the controller's acknowledgement is late, the answers are not
        click.echo(f"{message}; saved, and DNS already serves {served}, though the running "
                   f"controller ({who}) has not acknowledged it within {TAKE_UP_WAIT:g} s")
        return
    click.echo(f"{message}; saved, but the running controller ({who}) has not taken it "
               f"up within {TAKE_UP_WAIT:g} s: check `failover status` and its log", err=True)
    sys.exit(EXIT_FAILURE)


def _already_in_dns(cfg: Config, action: str, region: str,
                    in_force: list[Any] | None) -> str | None:
    """What DNS serves when it already answers as a drain or a restore of `region` asks,
    though the running controller has not acknowledged the change; None when it does not,
    DNS cannot say, or the overrides in force (`in_force`, None when unread) say the change
    was undone since."""
    if action not in ("drain", "restore"):
        return None
    if in_force is not None and any(o.kind == "drain" and o.target == region
                                    for o in in_force) != (action == "drain"):
        return None
    served = _served(cfg)
    if served is None:
        return None
    if action == "drain":
        return _drained_in_dns(cfg, region, served)
    pinned = {o.target for o in in_force or [] if o.kind == "pin" and o.region == region}
    return _restored_in_dns(cfg, region, served, pinned)


def _served(cfg: Config) -> dict[tuple[str, str], frozenset[str]] | None:
    """What DNS serves for each record of the config; None when DNS cannot say."""
    from failover.reconcile import record_keys
    from failover.service import adapter_for

    try:
        adapter = adapter_for(cfg)
        if adapter is None:
            return None
        return {(r.name, r.type): frozenset(r.values) for r in adapter.served(record_keys(cfg))}
    except FailoverError:
        return None


def _drained_in_dns(cfg: Config, region: str,
                    served: dict[tuple[str, str], frozenset[str]]) -> str | None:
    """What DNS serves when every record's answer is already without `region` (as
    "NAME TYPE without REGION"); None when one still answers from it."""
    from failover.drill import region_values

    keys = [(r.name, r.type) for r in cfg.records]
    if any(not served.get(k) or served[k] & region_values(cfg, region, k) for k in keys):
        return None
    return ", ".join(f"{name} {rtype}" for name, rtype in keys) + f" without {region}"


def _restored_in_dns(cfg: Config, region: str, served: dict[tuple[str, str], frozenset[str]],
                     pinned: set[str]) -> str | None:
    """What DNS serves when a record answers from `region` (as "NAME TYPE from REGION"):
    a drain of it is no longer in its answers; None when none does. A record pinned to
    the region (`pinned`: names) says nothing: a forced pin answers from a drained one."""
    from failover.drill import region_values

    keys = [(r.name, r.type) for r in cfg.records if r.name not in pinned
            and region in cfg.record_regions(r)]
    back = [k for k in dict.fromkeys(keys) if served.get(k, frozenset())
            & region_values(cfg, region, k)]
    if not back:
        return None
    return ", ".join(f"{name} {rtype}" for name, rtype in back) + f" from {region}"


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
