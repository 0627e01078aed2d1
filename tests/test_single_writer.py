"""One writer per zone without a fleet: a second controller on the same zone (its own
state file) finds the zone's fence held and refuses to write, until told to take over."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dns.query
import dns.tsigkeyring
import dns.update

from failover.dns.base import fence_fields, fence_name
from failover.localdns import free_port
from tests.builders import ROOT
from tests.service_env import EAST, WEST, Env, served_east, wait_for


def _second(env: Env, order: str = "[eu-west-1, us-east-1]") -> Path:
    """Another controller's config for the same zone: its own directory and state, the
    other region first (so two writers would fight over the answer)."""
    d = env.dir / "second"
    d.mkdir()
    shutil.copy(env.dir / "tsig.secret", d / "tsig.secret")
    text = env.config.read_text().replace(f"listen: 127.0.0.1:{env.api_port}",
                                          f"listen: 127.0.0.1:{free_port()}")
    (d / "failover.yaml").write_text(text.replace("order: [us-east-1, eu-west-1]",
                                                  f"order: {order}"))
    return d / "failover.yaml"


def _run(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", "run", "--config", str(config),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _fence(env: Env) -> dict[str, str]:
    r = dns.query.udp(dns.message.make_query(fence_name("example.test."), "TXT"), "127.0.0.1",
                      port=env.named.port, timeout=2)
    return fence_fields([rd.to_text() for rrset in r.answer for rd in rrset])


def test_a_second_controller_on_the_zone_refuses_to_start(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert wait_for(lambda: _fence(env).get("leader", "").endswith("failover.db"), 20)
    holder = _fence(env)["leader"]
    second = _second(env)
    for args in ((), ("--once",)):
        r = _run(second, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert f"example.test. is written by another controller: {holder}" in r.stderr
        assert "--take-over" in r.stderr and "Traceback" not in r.stderr
    assert env.answer() == {EAST}  # the first one's answer, untouched


def test_take_over_is_explicit_and_the_first_one_stops_and_says_so(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    second = _second(env)
    log = (second.parent / "controller.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "failover", "run", "--config", str(second),
                             "--take-over"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: env.answer() == {WEST}, 30), (second.parent /
                                                              "controller.log").read_text()
        # the first one's next write (us-east-1 fails: it would answer eu-west-1) is
        # refused by the fence: it stops, degraded, and never fights back
        env.stop_region(EAST)
        assert wait_for(lambda: "not writing DNS: another controller took the zone over"
                        in env.readyz()[1], 30), env.readyz()
        assert "ERROR" in env.log() and "event=zone_held" in env.log()
        history = json.loads(env.cli("history", "--json").stdout)
        assert any(e["message"].startswith("not writing DNS") for e in history)
        assert env.answer() == {WEST}
        text = (second.parent / "controller.log").read_text()
        assert "took the zone from" in text and "(--take-over)" in text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_fence_left_by_a_stopped_controller_is_taken_with_a_log_line(env: Env) -> None:
    keyring = dns.tsigkeyring.from_text({env.named.tsig_name: env.named.tsig_secret})
    upd = dns.update.UpdateMessage("example.test.", keyring=keyring)
    old = int(time.time()) - 3600
    upd.replace(fence_name("example.test."), 60, "TXT",
                f'"epoch=5" "leader=gone-host:/var/lib/failover.db" "renewed={old}"')
    assert dns.query.udp(upd, "127.0.0.1", port=env.named.port, timeout=2).rcode() == 0
    env.start_controller()
    assert wait_for(served_east(env), 30), env.log()
    assert "took the zone from gone-host:/var/lib/failover.db" in env.log()
    assert "it has not renewed its fence for 60 min" in env.log()
    assert _fence(env)["leader"].endswith("failover.db") and _fence(env)["leader"] != (
        "gone-host:/var/lib/failover.db")


def test_a_restart_rewrites_no_fence(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert wait_for(lambda: "renewed" in _fence(env), 20)
    before, serial = _fence(env), env.serial()
    env.stop_controller()
    env.start_controller()
    assert wait_for(lambda: env.readyz()[0] == 200, 30), env.readyz()
    assert _fence(env) == before and env.serial() == serial
