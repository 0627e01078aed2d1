"""The controller keeps failing over through reloads, floods, bad state and hostile input."""

from __future__ import annotations

import os
import signal

from failover.localdns import free_port
from tests.fleet import fleet
from tests.service_env import EAST, WEST, Env, served_east, wait_for

SOUTH = "127.0.3.1"


def _endpoint(env: Env, eid: str) -> dict[str, object]:
    for region in env.status().get("regions", {}).values():
        for ep in region["endpoints"]:
            if ep["id"] == eid:
                return dict(ep)
    return {}


def test_a_reload_puts_new_checks_regions_and_records_in_effect(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    port = free_port(EAST, WEST, SOUTH)
    with fleet([{"name": SOUTH, "host": SOUTH, "port": port, "behaviour": "ok"}]):
        with fleet([{"name": EAST, "host": EAST, "port": port, "behaviour": "ok"}]):
            # the check moves to another port (where west has nothing) and a region is added
            text = env.config.read_text().replace(f"port: {env.http_port}", f"port: {port}")
            text = text.replace("  eu-west-1: {endpoints: [{address: 127.0.2.1, check: web}]}",
                                "  eu-west-1: {endpoints: [{address: 127.0.2.1, check: web}]}\n"
                                f"  ap-south-1: {{endpoints: [{{address: {SOUTH}, check: web}}]}}")
            text = text.replace("order: [us-east-1, eu-west-1]",
                                "order: [us-east-1, eu-west-1, ap-south-1]")
            env.config.write_text(text)
            os.kill(proc.pid, signal.SIGHUP)
            # the new region is probed (by the new checks) and the controller stays ready
            assert wait_for(lambda: bool(_endpoint(env, f"ap-south-1/{SOUTH}").get("recent")),
                            timeout=15), env.log()
            assert wait_for(lambda: _endpoint(env, f"eu-west-1/{WEST}").get("healthy") is False,
                            timeout=15), env.log()
            assert env.status()["ready"] is True
            assert env.answer() == {EAST}
            env.stop_region(EAST)  # on the old port: its check no longer runs
        # east on the new port gone: the answer goes to the region the reload added
        assert wait_for(lambda: env.answer() == {SOUTH}, timeout=20), env.log()
    assert proc.poll() is None
