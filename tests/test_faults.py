"""Faults during failover, end to end: whatever happens, the answer finally served is the
policy's answer for the final health (nothing lost, never empty)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover import children

# the env fixture (tests/conftest.py): named, two regions, the controller's config
# (request_interval 1 s, failure_threshold 2, response_timeout 0.5 s)
from tests.service_env import EAST, WEST, Env, served_east, shifted_clock, wait_for


def test_endpoint_hangs_after_accept(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    os.kill(env.regions[EAST].pid, signal.SIGSTOP)  # accepts (kernel backlog), never answers
    try:
        assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    finally:
        os.kill(env.regions[EAST].pid, signal.SIGCONT)
    assert wait_for(served_east(env), timeout=15), env.log()


def test_just_under_the_timeout_stays_just_over_fails(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    started = time.time()
    env.start_region(EAST, behaviour="slow:0.3")  # under the 0.5 s response timeout
    # four probes of the slow endpoint have come back (failure_threshold 2: two timeouts
    # in a row would have failed it), every one of them in time
    assert wait_for(lambda: len(_probes_since(env, started)) >= 4, timeout=30), env.status()
    assert all(p["ok"] for p in _probes_since(env, started)), _probes_since(env, started)
    assert env.answer() == {EAST}
    env.start_region(EAST, behaviour="slow:0.8")  # over it
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()


def test_every_region_down_fails_open_never_empty(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    env.stop_region(WEST)
    # both down: fail open answers with the primary; the name never goes empty on the way
    seen: list[set[str]] = []

    def failed_open() -> bool:
        answer = env.answer()
        assert answer, f"the name was left without an answer (after {seen})"
        if not seen or seen[-1] != answer:
            seen.append(answer)
        return answer == {EAST} and env.record().get("basis") == "fail_open"

    assert wait_for(failed_open, timeout=20, step=0.02), (seen, env.record(), env.log())
    assert seen == [{WEST}, {EAST}]  # from the backup straight to failing open


def test_sigkill_around_the_write_then_restart_converges(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    # the controller is killed as soon as the failover is decided (its write under way or
    # about to be), then as soon as named serves it (its bookkeeping after the write)
    for moment in ("decided", "served", "decided"):
        env.stop_region(EAST)
        if moment == "decided":
            assert wait_for(lambda: env.record().get("values") == [WEST], timeout=15,
                            step=0.01), env.status()
        else:
            assert wait_for(lambda: env.answer() == {WEST}, timeout=15, step=0.01), env.log()
        env.stop_controller(signal.SIGKILL)
        env.start_controller()
        assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
        env.start_region(EAST)
        assert wait_for(served_east(env), timeout=15), env.log()


def test_the_wall_clock_jumping_neither_stalls_nor_skips_a_failback(env: Env) -> None:
    env.write_config(failback=8)
    shift = env.dir / "wall-shift"
    shift.write_text("0")
    env.start_controller(env=shifted_clock(shift))
    assert wait_for(served_east(env)), env.log()
    # four minutes back, then eight forward, each while an 8 s failback delay runs (named
    # keeps the true time: the steps stay within TSIG's 300 s fudge)
    for seconds in (-240, 240):
        env.stop_region(EAST)
        assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
        started = time.monotonic()  # east recovers after this, and fails back 8 s later
        env.start_region(EAST)
        assert wait_for(lambda: env.record().get("basis") == "hold", timeout=15,
                        step=0.02), env.log()
        shift.write_text(str(seconds))
        # back: it would hold four minutes more; the steady clock ends it at 8 s
        assert wait_for(served_east(env), timeout=30, step=0.02), env.log()
        # forward: a delay measured by the wall clock would be over at the next tick. Seen
        # here after it happened, so a failback on time is never seen early, however slow
        # the machine (a lower bound, not a timing window)
        waited = time.monotonic() - started
        assert waited >= 8, f"failed back {waited:.1f} s after a {seconds} s step"
    # an hour off: named refuses the signed updates, and says why; once the clock is
    # right again the refused failover is written (nothing lost)
    shift.write_text("3600")  # read within 50 ms; the write comes after two failed probes
    env.stop_region(EAST)
    assert wait_for(lambda: "differ by more than 300 s" in env.log(), timeout=15), env.log()
    assert env.answer() == {EAST}
    shift.write_text("0")
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    env.start_region(EAST)
    assert wait_for(served_east(env), timeout=15), env.log()
    # the answer served is the policy's for the final health
    # /status is published after the tick that wrote the answer: wait for it, not race it
    assert wait_for(lambda: env.record().get("desired") == [EAST], timeout=10), env.record()


def test_route53_throttling_during_a_failover(env: Env, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from failover.localdns import free_port
    from tests.builders import ROOT

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "moto_fixes.py"), "-H", "127.0.0.1", "-p",
         str(port)], env={**os.environ, "MOTO_THROTTLE_EVERY": "2"},
        stdout=(tmp_path / "moto.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}
        for key, value in creds.items():
            monkeypatch.setenv(key, value)
        assert wait_for(lambda: _up(url), timeout=30)
        client = boto3.client("route53", endpoint_url=url)
        zone = client.create_hosted_zone(Name="example.test.", CallerReference="faults")
        zone_id = zone["HostedZone"]["Id"].split("/")[-1]
        text = env.config.read_text()
        start = text.index("provider:")
        end = text.index("controller:")
        env.config.write_text(text[:start] + f"provider:\n  type: route53\n  hosted_zone_id: "
                              f"{zone_id}\n  endpoint_url: {url}\n" + text[end:])

        def primary() -> list[str]:
            sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            return [r["Value"] for s in sets if s.get("SetIdentifier") == "primary"
                    for r in s["ResourceRecords"]]

        env.start_controller()
        assert wait_for(lambda: primary() == [EAST], timeout=30), env.log()
        env.stop_region(EAST)
        assert wait_for(lambda: primary() == [WEST], timeout=30), env.log()
        # every other write was throttled and retried, and nothing was lost (the
        # controller logs a write once it has read it back: wait for that line)
        assert wait_for(lambda: any(int(x) > 0 for x in re.findall(
            r"provider=route53 .* retries=(\d+)", env.log())), timeout=15), env.log()
    finally:
        children.stop(server)


def _up(url: str) -> bool:
    import boto3

    try:
        boto3.client("route53", endpoint_url=url).list_hosted_zones()
        return True
    except Exception:
        return False


def _probes_since(env: Env, at: float) -> list[dict[str, object]]:
    """The us-east-1 endpoint's probe results (in /status) that came back after `at`."""
    region = env.status().get("regions", {}).get("us-east-1", {})
    return [p for e in region.get("endpoints", []) if e["id"] == f"us-east-1/{EAST}"
            for p in e["recent"] if float(p["at"]) >= at]
