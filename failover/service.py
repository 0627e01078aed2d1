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
import time
from typing import Any

from failover.api import ApiServer, Published
from failover.config import Config, load_config, resolve_secret, split_host_port
from failover.controller import Controller
from failover.dns import make_adapter
from failover.dns.base import Adapter
from failover.errors import FailoverError
from failover.probes.runtime import run_loop
from failover.state import open_state

log = logging.getLogger("failover")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"at": record.created, "level": record.levelname.lower(),
                           "logger": record.name, "message": record.getMessage()})


def setup_logging(fmt: str, level: str = "INFO") -> None:
    """Structured logs on stderr: key=value text (default) or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def adapter_for(cfg: Config) -> Adapter | None:
    """The provider's adapter; a provider this version cannot write is an error here."""
    try:
        return make_adapter(cfg)
    except NotImplementedError as exc:
        raise FailoverError(str(exc)) from None


def serve(config_path: str, *, dry_run: bool, once: bool, force: bool = False) -> None:
    """Run the controller until stopped. Raises FailoverError for startup failures."""
    cfg = load_config(config_path)
    adapter = adapter_for(cfg)
    state = open_state(cfg)
    # planning and writing run on threads beside the loop that runs the probes: hand the
    # interpreter back to the loop every millisecond rather than every five, so a probe
    # due while 10,000 names are planned starts on time
    sys.setswitchinterval(0.001)
    try:
        run_loop(_main(config_path, cfg, adapter, state, dry_run=dry_run, once=once,
                       force=force))
    finally:
        state.close()


async def _main(config_path: str, cfg: Config, adapter: Adapter | None, state: Any, *,
                dry_run: bool, once: bool, force: bool = False) -> None:
    from failover import overrides

    loop = asyncio.get_running_loop()
    controller = Controller(cfg, state=state, adapter=adapter, dry_run=dry_run, force=force)
    published = Published()

    building: list[asyncio.Future[None] | None] = [None]
    built_at, built_version = [-1e9], [-1]  # of the /status published

    def publish() -> None:
        published.ready = controller.ready
        published.at = time.monotonic()
        if building[0] is not None and not building[0].done():
            return
        if not controller.status_due(built_at[0], built_version[0]):
            return
        built_at[0], built_version[0] = controller.clock(), controller.version
        make = controller.status_maker()

        def build() -> None:
            published.status = make()

        # on a thread: 10,000 records are megabytes of JSON the probes must not wait for
        building[0] = loop.run_in_executor(None, build)

    controller.on_tick = publish
    published.status = controller.status_maker()()
    publish()

    def change(action: str, body: dict[str, Any]) -> str:
        c, now = controller.cfg, time.time()
        why = str(body.get("reason", "via API"))
        if action == "drain":
            msg = overrides.drain(c, state, str(body.get("region")), why=why, now=now,
                                  force=bool(body.get("force")), actor="api")
        elif action == "restore":
            msg = overrides.restore(c, state, str(body.get("region")))
        elif action == "pin":
            msg = overrides.pin(c, state, str(body.get("name")), str(body.get("region")),
                                why=why, now=now, actor="api")
        else:
            msg = overrides.unpin(c, state, str(body.get("name")))
        loop.call_soon_threadsafe(controller.wake)
        return msg

    api = None
    if not once:
        host, port = split_host_port(cfg.controller.listen)
        c = cfg.controller
        token = (resolve_secret(c.token_env, c.token_file, "controller.token", cfg.base_dir)
                 .get_secret_value() if c.token_env or c.token_file else None)
        api = ApiServer(host, port, controller, published, token, change)
        api.start()
        log.info("event=listening address=%s:%d", host, api.port)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:
        try:
            new = load_config(config_path)
            new_adapter = adapter_for(new)
        except FailoverError as exc:
            log.error("event=reload_refused config=%s error=%r: the running config stays",
                      config_path, str(exc))
            controller.event("error", "config", f"reload refused, running config kept: {exc}")
            return
        controller.reload(new, new_adapter)
        log.info("event=reloaded config=%s", config_path)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await controller.run(stop, once=once)
    finally:
        if api is not None:
            api.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
