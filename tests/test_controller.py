"""The controller service end to end: real named, real endpoints, a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from failover.state import open_state
from tests.builders import ROOT
from tests.service_env import EAST, WEST, Env, only_east_healthy, served_east, wait_for


def settled(env: Env) -> Callable[[], bool]:
    """True once the controller is ready (its first full probe round done) and a tick that
    began after that has ended: whatever it was going to write by then is written. The
    positive signal a "nothing changed" check waits for, instead of a fixed sleep."""
    ready_at: list[float] = []

    def check() -> bool:
        status = env.status()
        if not status.get("ready"):
            return False
        if not ready_at:
            ready_at.append(status["at"])
            return False
        return (status.get("last_tick") or {}).get("at", 0.0) > ready_at[0]

    return check


def test_fails_over_after_n_failures_and_back_after_the_failback_delay(env: Env) -> None:
    env.write_config(failback=2)
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    env.start_region(EAST)
    assert wait_for(served_east(env), timeout=15), env.log()
    history = env.cli("history", "--json")
    messages = [e["message"] for e in json.loads(history.stdout)]
    assert any("us-east-1/127.0.1.1 is unhealthy: after 2 failures: connection refused" in m
               for m in messages)
    assert any("failback to us-east-1 in" in m for m in messages)
    assert env.stop_controller() == 0  # SIGTERM: clean exit


def test_status_metrics_and_readiness(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    base = f"http://127.0.0.1:{env.api_port}"
    assert wait_for(lambda: _get(f"{base}/readyz")[0] == 200)
    assert _get(f"{base}/healthz")[0] == 200
    code, body = _get(f"{base}/status")
    assert code == 200
    status = json.loads(body)
    assert status["ready"] and status["records"][0]["desired"] == [EAST]
    code, metrics = _get(f"{base}/metrics")
    assert code == 200
    assert "failover_region_healthy{region=\"us-east-1\"} 1.0" in metrics
    assert "failover_dns_changes_total" in metrics
    # changing state over HTTP needs a configured token
    req = urllib.request.Request(f"{base}/v1/drain", data=b'{"region": "us-east-1"}',
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 403
    out = env.cli("status")
    assert "api.example.test. A failover: desired 127.0.1.1, served 127.0.1.1" in out.stdout


def test_flapping_faster_than_the_threshold_changes_nothing(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    serial = env.serial()
    flapping_since = time.time()
    env.start_region(EAST, behaviour="flap")  # 200, 503, 200, ... never 2 failures in a row

    def flapped() -> bool:  # the controller saw it fail twice and succeed in between
        eps = env.status().get("regions", {}).get("us-east-1", {}).get("endpoints", [])
        seen = [o["ok"] for e in eps for o in e["recent"] if o["at"] > flapping_since]
        return seen.count(False) >= 2 and True in seen[seen.index(False):]

    assert wait_for(flapped, timeout=20), env.status()
    assert wait_for(settled(env)), env.status()
    assert env.answer() == {EAST} and env.serial() == serial
    history = json.loads(env.cli("history", "--json").stdout)
    assert not [e for e in history if e["kind"] == "health"]


def test_drain_moves_the_answer_and_survives_a_restart(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    refused = env.cli("drain", "us-east-1")
    assert refused.returncode == 0, refused.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()
    env.stop_controller(signal.SIGKILL)
    serial = env.serial()
    env.start_controller()
    assert wait_for(settled(env)), env.log()  # a first probe round, and a tick after it
    assert env.record().get("values") == [WEST]
    assert env.answer() == {WEST} and env.serial() == serial
    assert env.cli("restore", "us-east-1").returncode == 0
    assert wait_for(served_east(env), timeout=5), env.log()


def test_drain_that_strands_a_record_needs_force(env: Env) -> None:
    env.add_token()
    only_east_healthy(env)
    r = env.cli("drain", "us-east-1")
    assert r.returncode == 2 and "use --force" in r.stderr
    # the API says how to force it in its own words
    url = f"http://127.0.0.1:{env.api_port}/v1/drain"
    for path, body in (("drain", b'{"region": "us-east-1"}'),
                       ("pin", b'{"name": "api", "region": "eu-west-1"}')):
        asked = urllib.request.Request(url.replace("drain", path), data=body, method="POST",
                                       headers={"Authorization": "Bearer s3cret-token-for-tests"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(asked, timeout=5)
        refusal = json.loads(info.value.read())["error"]
        assert 'send "force": true to' in refusal and "--force" not in refusal, refusal
    assert env.cli("drain", "us-east-1", "--force").returncode == 0


def test_sigkill_and_restart_changes_nothing_when_health_did_not(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    env.stop_controller(signal.SIGKILL)
    serial = env.serial()
    env.start_controller()
    assert wait_for(settled(env)), env.log()  # a first probe round, and a tick after it
    # us-east-1 is still down: a fresh start must not fail back to it "as new checks"
    assert env.record().get("values") == [WEST], env.status()
    assert env.answer() == {WEST} and env.serial() == serial, env.log()


def test_named_down_decisions_go_on_and_it_converges(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.named.stop()
    env.stop_region(EAST)

    # the failover is decided while DNS is down, and /readyz says it waits for DNS; a
    # stopped server refuses at once (not a 2 s timeout per attempt)
    assert wait_for(lambda: env.record().get("values") == [WEST], timeout=20), env.status()
    assert wait_for(lambda: "1 changed answer(s) will be written when DNS answers"
                    in env.readyz()[1], timeout=20), env.readyz()
    assert "Connection refused" in env.readyz()[1]
    env.start_region(EAST)  # and back, still with DNS down: decided again
    assert wait_for(lambda: env.record().get("values") == [EAST], timeout=20), env.status()
    assert env.controller is not None and env.controller.poll() is None
    env.stop_region(EAST)
    assert wait_for(lambda: env.record().get("values") == [WEST], timeout=20), env.status()
    env.named.restart()
    assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()
    assert wait_for(lambda: env.readyz()[0] == 200, timeout=20), env.readyz()


def test_bad_config_on_sighup_keeps_the_old_one(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    good = env.config.read_text()
    env.config.write_text(good.replace("failure_threshold: 2", "failure_threshold: 99"))
    os.kill(proc.pid, signal.SIGHUP)
    assert wait_for(lambda: "reload_refused" in env.log(), timeout=10), env.log()
    env.config.write_text(good)
    env.stop_region(EAST)  # the old config still runs and still fails over
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    assert proc.poll() is None


def test_dry_run_never_changes_dns(env: Env) -> None:
    env.start_controller("--dry-run")
    assert wait_for(settled(env)), env.log()
    assert env.record().get("values") == [EAST]  # decided: it would write east
    assert env.answer() == set()
    env.stop_region(EAST)
    assert wait_for(lambda: env.record().get("values") == [WEST], timeout=15), env.status()
    assert wait_for(settled(env)), env.log()
    assert env.answer() == set()
    history = json.loads(env.cli("history", "--json").stdout)
    assert any(e["subject"] == "dry-run" and "would apply" in e["message"] for e in history)


def test_run_once_writes_and_exits(env: Env) -> None:
    r = subprocess.run([sys.executable, "-m", "failover", "run", "--once", "--config",
                        str(env.config)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert env.answer() == {EAST}


def test_api_changes_need_the_bearer_token(env: Env) -> None:
    env.add_token()
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    url = f"http://127.0.0.1:{env.api_port}/v1/drain"
    body = b'{"region": "us-east-1", "reason": "maintenance"}'
    wrong = urllib.request.Request(url, data=body, method="POST",
                                   headers={"Authorization": "Bearer nope"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(wrong, timeout=5)
    assert info.value.code == 401
    right = urllib.request.Request(url, data=body, method="POST",
                                   headers={"Authorization": "Bearer s3cret-token-for-tests"})
    with urllib.request.urlopen(right, timeout=5) as resp:
        assert json.loads(resp.read())["message"] == "us-east-1 drained"
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()


def test_drain_with_expiry_lapses_by_itself(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert env.cli("drain", "us-east-1", "--for", "3s", "--reason", "db upgrade").returncode == 0
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()
    assert wait_for(served_east(env), timeout=10), env.log()
    # the history says the drain expired, whose it was and when it was set
    said = re.compile(r"override +drain of us-east-1 expired \(set by \S+@\S+ at "
                      r"\d\d:\d\d:\d\dZ: db upgrade\)")
    assert wait_for(lambda: said.search(env.cli("history").stdout) is not None, timeout=5), \
        env.cli("history").stdout


def test_unknown_region_for_drain_exits_2(env: Env) -> None:
    r = env.cli("drain", "mars-1")
    assert r.returncode == 2 and "unknown region 'mars-1'" in r.stderr
    r = env.cli("pin", "api.example.test", "mars-1")
    assert r.returncode == 2


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_state_survives_in_sqlite(tmp_path: Path) -> None:
    from failover.config import parse_config
    from failover.state.store import Override

    cfg = parse_config((ROOT / "examples" / "contract.yaml").read_text(), base_dir=tmp_path)
    state = open_state(cfg)
    state.set_override(Override("drain", "us-east-1", "us-east-1", "me", "test", 1.0))
    state.close()
    again = open_state(cfg)
    assert [o.region for o in again.overrides()] == ["us-east-1"]
    assert again.clear_override("drain", "us-east-1") and not again.overrides()
    again.close()


def test_state_tells_the_controller_of_writes_by_another_process(tmp_path: Path) -> None:
    from failover.config import parse_config
    from failover.state.store import Override

    cfg = parse_config((ROOT / "examples" / "contract.yaml").read_text(), base_dir=tmp_path)
    controller, cli = open_state(cfg), open_state(cfg)
    try:
        assert not controller.changed_elsewhere()  # the first look sets the baseline
        controller.set_override(Override("pin", "api.example.test.", "us-east-1", "c", "", 1.0))
        assert not controller.changed_elsewhere()  # its own writes are not news
        cli.set_override(Override("drain", "us-east-1", "us-east-1", "me", "test", 1.0))
        assert controller.changed_elsewhere()
        assert not controller.changed_elsewhere()
        cli.clear_override("drain", "us-east-1")
        assert controller.changed_elsewhere()
    finally:
        controller.close()
        cli.close()


def test_the_controller_records_the_overrides_it_takes_up(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert env.cli("drain", "us-east-1").returncode == 0
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()
    assert env.cli("restore", "us-east-1").returncode == 0
    assert wait_for(served_east(env), timeout=5), env.log()
    want = ["overrides in force: drain us-east-1", "overrides in force: none"]

    def taken_up() -> list[str]:  # saved at the end of the tick that wrote the answer
        return [e["message"] for e in json.loads(env.cli("history", "--json").stdout)
                if e["kind"] == "override" and e["subject"] == "controller"]

    assert wait_for(lambda: taken_up() == want, timeout=5), taken_up()


def test_drain_and_pin_exit_1_when_the_running_controller_does_not_take_them_up(
        env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    os.kill(proc.pid, signal.SIGSTOP)  # running (it holds the state) but taking nothing up
    try:
        r = env.cli("pin", "api", "eu-west-1")
        assert r.returncode == 1, r.stdout + r.stderr
        assert "has not taken it up within 5 s" in r.stderr
        r = env.cli("drain", "us-east-1")
        assert r.returncode == 1 and "has not taken it up within 5 s" in r.stderr, r.stderr
        assert env.answer() == {EAST}
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    # saved all the same: the controller takes both up once it runs again
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    r = env.cli("status", "--json")
    kinds = {(o["kind"], o["target"]) for o in json.loads(r.stdout)["overrides"]}
    assert {("pin", "api.example.test."), ("drain", "us-east-1")} <= kinds, kinds


def test_a_drain_dns_already_serves_is_not_reported_as_not_taken_up(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(EAST)  # DNS moves to eu-west-1 on health alone
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15), env.log()
    os.kill(proc.pid, signal.SIGSTOP)  # its acknowledgement of the drain will be late
    try:
        r = env.cli("drain", "us-east-1")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "saved, and DNS already serves api.example.test. A without us-east-1, though the " \
        "running controller" in r.stdout
    assert "has not acknowledged it within 5 s" in r.stdout


def test_a_restore_dns_does_not_serve_yet_is_reported_as_not_taken_up(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert env.cli("drain", "us-east-1").returncode == 0
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()
    os.kill(proc.pid, signal.SIGSTOP)  # the drain still served: the restore is not taken up
    try:
        r = env.cli("restore", "us-east-1")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert r.returncode == 1 and "has not taken it up within 5 s" in r.stderr, r.stdout
    assert wait_for(served_east(env), timeout=15), env.log()  # saved: taken up once it runs


def test_a_pin_for_a_while_expires_and_unpin_undoes_a_pin(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    r = env.cli("pin", "api", "eu-west-1", "--for", "4s")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, r.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=4), env.log()
    assert wait_for(served_east(env), timeout=15), env.log()  # it lapsed by itself
    assert env.record().get("basis") != "pin"
    r = env.cli("pin", "api", "eu-west-1")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, r.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=5), env.log()
    r = env.cli("unpin", "api")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, r.stderr
    assert wait_for(served_east(env), timeout=5), env.log()
    r = env.cli("unpin", "api")  # not pinned any more: an error, not "nothing to do"
    assert r.returncode == 2, r.stdout + r.stderr


def _metric(env: Env, name: str) -> float:
    code, text = _get(f"http://127.0.0.1:{env.api_port}/metrics")
    assert code == 200
    [value] = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


def test_the_health_to_served_metric_is_the_time_from_the_flip_to_the_answer(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert wait_for(settled(env)), env.log()
    assert _metric(env, "failover_health_to_served_seconds_count") == 0
    stopped = time.time()
    env.stop_region(EAST)
    still_east = [stopped]  # the last instant before which named still served east

    def served_west() -> bool:
        asked = time.time()
        answer = env.answer()
        if answer == {EAST}:
            still_east[0] = asked
        return answer == {WEST}

    assert wait_for(served_west, timeout=15, step=0.02), env.log()
    # observed once the write is confirmed (a moment after named serves it)
    assert wait_for(lambda: _metric(env, "failover_health_to_served_seconds_count") == 1,
                    timeout=15), env.log()
    served = time.time()  # after the controller took its measure

    def east() -> dict[str, Any]:
        return dict(env.status()["regions"]["us-east-1"]["endpoints"][0])

    assert wait_for(lambda: not east()["healthy"], timeout=15), east()  # /status follows
    flipped = east()["since"]  # when the controller saw it fail (its failure_threshold-th)
    assert stopped < flipped < served
    took = _metric(env, "failover_health_to_served_seconds_sum")
    # written after named last served east, and before the test saw west served
    assert still_east[0] - flipped < took <= served - flipped, (still_east, flipped, took,
                                                                served)


def test_plan_decides_from_the_controllers_health_and_drains(env: Env) -> None:
    env.start_controller("--dry-run")  # it decides and keeps its state, and writes nothing

    def planned() -> tuple[int, list[str], str]:
        r = env.cli("plan", "--json")
        out = json.loads(r.stdout)
        [api] = [c for c in out["changes"] if c["name"] == "api.example.test."]
        return r.returncode, api["values"], out["health"]

    assert wait_for(settled(env)), env.log()
    code, values, health = planned()
    assert code == 2 and values == [EAST]
    assert health.startswith("health and latency from the controller's state")
    assert env.cli("drain", "us-east-1").returncode == 0
    assert planned()[:2] == (2, [WEST])  # the drain in the state
    assert env.cli("restore", "us-east-1").returncode == 0
    assert planned()[:2] == (2, [EAST])
    env.stop_region(EAST)
    assert wait_for(lambda: env.record().get("values") == [WEST], timeout=15), env.status()
    assert wait_for(lambda: planned()[:2] == (2, [WEST]), timeout=10)  # once it is saved
    assert env.answer() == set()
