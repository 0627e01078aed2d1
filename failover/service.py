"""`failover run`: the long-lived service around the controller.

It opens the state, the DNS adapter and the HTTP endpoint, runs the controller, stops
cleanly on SIGTERM/SIGINT (the tick in flight finishes), and reloads the config on
SIGHUP: an invalid new config is logged and the old one keeps running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from failover.api import ApiServer, Published, Token
from failover.config import ClusterSettings, Config, load_config, split_host_port
from failover.controller import Controller
from failover.dns import make_adapter
from failover.dns.base import Adapter
from failover.errors import FailoverError, InputError
from failover.probes.runtime import run_loop
from failover.reloads import Reloads
from failover.state import open_state
from failover.state.held import HeldOverrides
from failover.state.store import OverrideChange

log = logging.getLogger("failover")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, a traceback included as a field (never raw lines)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"at": record.created, "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out)


def setup_logging(fmt: str, level: str = "INFO") -> None:
    """Structured logs on stderr: key=value text (default) or JSON lines. Warnings and
    exceptions nobody caught (in any thread) go through the same handler, so with JSON
    every line on stderr is JSON."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: the fleet's etcd renewals would fill the log
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    crash = logging.getLogger("failover.crash")

    def uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        crash.critical("event=uncaught_exception error=%r", str(exc), exc_info=(kind, exc, tb))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        crash.error("event=thread_exception thread=%s error=%r",
                    args.thread.name if args.thread else "?", str(args.exc_value),
                    exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread


def adapter_for(cfg: Config) -> Adapter | None:
    """The provider's adapter; a provider this version cannot write is an error here."""
    try:
        return make_adapter(cfg)
    except NotImplementedError as exc:
        raise FailoverError(str(exc)) from None


def serve(config_path: str, *, dry_run: bool, once: bool, force: bool = False,
          take_over: bool = False) -> None:
    """Run the controller until stopped. Raises FailoverError for startup failures."""
    cfg = load_config(config_path)
    if once and cfg.controller.cluster is not None:
        raise InputError("run --once writes DNS alone, outside the fleet's election: it cannot "
                         "run with controller.cluster; `failover plan` shows what would change")
    if cfg.controller.cluster is not None and cfg.controller.cluster.not_listed():
        raise InputError(str(cfg.controller.cluster.not_listed()))
    api_token(cfg)  # a blank or short token is refused before anything starts
    adapter = adapter_for(cfg)
    state = open_state(cfg, exclusive=True)  # a corrupt SQLite file is set aside
    if cfg.controller.cluster is None:
        # an operator's change the state cannot take is held in memory, in force at once
        # (a fleet's change must reach etcd, where the leader reads it)
        state = HeldOverrides(state)
    if cfg.controller.cluster is None and adapter is not None and not dry_run:
        try:
            _zone_free(cfg, adapter, take_over)
        except BaseException:
            state.close()
            raise
    # planning and writing run on threads beside the loop that runs the probes: hand the
    # interpreter back to the loop every millisecond rather than every five, so a probe
    # due while 10,000 names are planned starts on time
    sys.setswitchinterval(0.001)
    try:
        run_loop(_main(config_path, cfg, adapter, state, dry_run=dry_run, once=once,
                       force=force, take_over=take_over))
    finally:
        state.close()


def _zone_free(cfg: Config, adapter: Adapter, take_over: bool) -> None:
    """Alone: refuse to start (exit 2) when another controller holds a zone's fence; a
    fence that cannot be read yet (DNS down) is checked again before the first write."""
    from failover.dns.base import DnsError
    from failover.dns.claim import claim, identity

    try:
        claim(adapter, identity(cfg.path(cfg.controller.state)), cfg.ownership.owner_id,
              take_over=take_over, now=time.time())
    except DnsError as exc:
        log.warning("event=fence_unread error=%r: checked again before the first write",
                    str(exc))


def api_token(cfg: Config) -> Token | None:
    """The API's bearer token and its name for the history (its env var or file)."""
    token = cfg.api_token()
    return None if token is None else Token(*token)


def _same_process(old: Config, new: Config) -> None:
    """Settings a reload cannot change in a running process; raises InputError."""
    def fixed(c: ClusterSettings | None) -> ClusterSettings | None:
        return None if c is None else c.model_copy(update={"vantages": None})

    # the fleet's vantages (who votes) a reload does change: a new instance joins with it
    if fixed(old.controller.cluster) != fixed(new.controller.cluster):
        raise InputError("controller.cluster changed: a restart applies it, a reload cannot "
                         "(the running controller keeps its config)")
    if new.controller.cluster is not None and new.controller.cluster.not_listed():
        raise InputError(str(new.controller.cluster.not_listed()))
    for what in ("listen", "state"):
        if getattr(old.controller, what) != getattr(new.controller, what) or (
                what == "state" and old.path(old.controller.state)
                != new.path(new.controller.state)):
            raise InputError(f"controller.{what} changed: a restart applies it, a reload "
                             "cannot (the running controller keeps its config)")


def _expiry(body: Any, now: float) -> float | None:
    from failover.durations import expiry

    try:
        return expiry(body.for_, body.expires, now)
    except ValueError as exc:
        raise InputError(str(exc)) from None


async def _main(config_path: str, cfg: Config, adapter: Adapter | None, state: Any, *,
                dry_run: bool, once: bool, force: bool = False, take_over: bool = False) -> None:
    loop = asyncio.get_running_loop()
    member = None
    cluster = cfg.controller.cluster
    if cluster is not None:
        from failover.cluster.member import Member

        member = Member(state.client, cluster.etcd.prefix, cluster.vantage_name(),
                        cluster.lease_ttl)
        await loop.run_in_executor(None, state.watch)  # overrides: from a watched cache
        member.start()
        log.info("event=fleet_member vantage=%s prefix=%s lease_ttl=%d", member.vantage,
                 cluster.etcd.prefix, cluster.lease_ttl)
        if cluster.etcd.in_clear():
            log.warning("event=etcd_password_in_clear %s", cluster.etcd.in_clear())
    try:
        await _serve(config_path, cfg, adapter, state, member, dry_run=dry_run, once=once,
                     force=force, take_over=take_over)
    finally:
        if member is not None:
            await loop.run_in_executor(None, member.stop)


async def _serve(config_path: str, cfg: Config, adapter: Adapter | None, state: Any,
                 member: Any, *, dry_run: bool, once: bool, force: bool = False,
                 take_over: bool = False) -> None:
    from failover import overrides

    loop = asyncio.get_running_loop()
    controller = Controller(cfg, state=state, adapter=adapter, dry_run=dry_run, force=force,
                            take_over=take_over,
                            member=member)
    set_aside = getattr(state, "set_aside", None)
    if set_aside is not None:  # the first line of the new state's history
        controller.event("error", "state", set_aside)
    published = Published()

    building: list[asyncio.Future[None] | None] = [None]
    built_at, built_version = [-1e9], [-1]  # of the /status published

    def publish() -> None:
        published.ready = controller.ready
        published.problems = tuple(controller.problems())
        published.at = time.monotonic()
        rebuild(asked=False)

    def rebuild(asked: bool) -> None:
        if building[0] is not None and not building[0].done():
            return
        if not controller.status_due(built_at[0], built_version[0], asked):
            return
        built_at[0], built_version[0] = controller.clock(), controller.version
        make = controller.status_maker()

        def build() -> None:
            published.status = make()

        # on a thread: 10,000 records are megabytes of JSON the probes must not wait for
        building[0] = loop.run_in_executor(None, build)

    async def fresh() -> bytes:
        # /status asked for: made again first when older than STATUS_REFRESH (health
        # details, times); nobody asking, it is made again only when something changed
        rebuild(asked=True)
        if building[0] is not None:
            await asyncio.shield(building[0])
        return published.status

    controller.on_tick = publish
    published.status = controller.status_maker()()
    published.fresh = fresh
    publish()

    async def change(action: str, body: Any, actor: str) -> str:
        c, now = controller.cfg, time.time()

        def make() -> OverrideChange:
            if action == "drain":
                return overrides.drain(c, state, body.region, why=body.reason, now=now,
                                       force=body.force, actor=actor,
                                       expires=_expiry(body, now), forcing=overrides.API_FORCE,
                                       network=body.network)
            if action == "restore":
                return overrides.restore(c, state, body.region, now=now, actor=actor,
                                         why=body.reason, network=body.network)
            if action == "pin":
                return overrides.pin(c, state, body.name, body.region, why=body.reason,
                                     now=now, actor=actor, force=body.force,
                                     expires=_expiry(body, now), forcing=overrides.API_FORCE,
                                     network=body.network)
            return overrides.unpin(c, state, body.name, now=now, actor=actor, why=body.reason,
                                   network=body.network)

        def apply() -> str:
            change = make()
            try:
                return overrides.commit(state, change)
            except InputError:
                raise
            except FailoverError as exc:
                if not isinstance(state, HeldOverrides):
                    raise
                state.hold(change)
                return (f"{change.summary}; in force now, held in memory by the running "
                        f"controller: its state cannot be written ({exc}); written there "
                        "when it can be, lost if the controller stops first")

        message = await loop.run_in_executor(None, apply)  # SQLite: off the loop
        controller.wake()
        return message

    token: list[Token | None] = [api_token(cfg)]
    api = None
    if not once:
        host, port = split_host_port(cfg.controller.listen)
        api = ApiServer(host, port, controller, published, lambda: token[0], change,
                        allowed_hosts=lambda: controller.cfg.controller.allowed_hosts)
        await api.start()
        log.info("event=listening address=%s:%d", host, api.port)
        exposed = cfg.controller.exposed()
        if exposed:
            log.warning("event=listen_exposed %s", exposed)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def read_config() -> tuple[Config, Adapter | None, Token | None]:
        new = load_config(config_path)
        _same_process(controller.cfg, new)
        return new, adapter_for(new), api_token(new)

    async def reload() -> None:
        try:
            # on a thread: parsing a large config must not hold up the probes
            new, new_adapter, new_token = await loop.run_in_executor(None, read_config)
        except FailoverError as exc:
            log.error("event=reload_refused config=%s error=%r: the running config stays",
                      config_path, str(exc))
            controller.event("error", "config", f"reload refused, running config kept: {exc}")
            controller.metrics.reloads.labels("refused").inc()
            return
        controller.reload(new, new_adapter)
        token[0] = new_token
        controller.metrics.reloads.labels("applied").inc()
        log.info("event=reloaded config=%s signals=%d", config_path, reloads.covering)

    reloads = Reloads(reload)
    reloader = asyncio.ensure_future(reloads.run())
    loop.add_signal_handler(signal.SIGHUP, reloads.request)
    try:
        await controller.run(stop, once=once)
    finally:
        reloader.cancel()
        if api is not None:
            api.stop()
        log.info("event=stopped reason=%s", "signal" if stop.is_set() else
                 "once" if once else "error")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    last = controller.last
    if once and (last.error or last.refused):
        # a CI job or a cron entry must see that DNS was not written as decided
        why = last.error or ("refused by safety guards: " + "; ".join(last.refused)
                             + " (--force applies it)")
        raise FailoverError(f"the write failed: {why}")
