"""The controller answering two client networks from two BIND views: each network gets
its own answer, moves on its own when a region fails, and takes drains and pins of its
own over the API; /status and the page show each network's answer."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.localdns import free_port
from tests.service_env import (
    EAST,
    EUROPE_CLIENT,
    OTHER_CLIENT,
    WEST,
    Env,
    a_values,
    http_get,
    viewed_named,
    wait_for,
    write_view_keys,
)

TOKEN = "networks-token-for-tests"
NAME = "api.example.test."

CONFIG = """
zone: example.test.
provider:
  type: rfc2136
  server: 127.0.0.1
  port: {dns_port}
  views:
    europe: {{tsig: {{name: view-europe, secret_file: ./europe.key}}}}
    default: {{tsig: {{name: view-default, secret_file: ./default.key}}}}
networks:
  europe: {{cidrs: [127.0.0.128/25]}}
  default: {{}}
controller:
  state: ./failover.db
  listen: 127.0.0.1:{api_port}
  token_file: ./token
checks:
  web: {{type: HTTP, port: {http_port}, resource_path: /health, request_interval: 1,
         failure_threshold: 2, response_timeout: 0.5}}
regions:
  us-east-1: {{endpoints: [{{address: {east}, check: web}}]}}
  eu-west-1: {{endpoints: [{{address: {west}, check: web}}]}}
records:
  - name: api.example.test.
    type: A
    ttl: 5
    policy: failover
    order: [us-east-1, eu-west-1]
    networks:
      europe: {{order: [eu-west-1, us-east-1]}}
"""


@pytest.fixture
def views_env(tmp_path: Path) -> Iterator[Env]:
    """named with two views (europe by 127.0.0.128/25, default), both regions up, and
    the controller running on them."""
    named = viewed_named(tmp_path / "named")
    env = Env(dir=tmp_path, named=named, http_port=free_port(EAST), api_port=free_port())
    try:
        write_view_keys(named, tmp_path)
        (tmp_path / "token").write_text(TOKEN + "\n")
        env.config.write_text(CONFIG.format(dns_port=named.port, api_port=env.api_port,
                                            http_port=env.http_port, east=EAST, west=WEST))
        env.start_region(EAST)
        env.start_region(WEST)
        env.start_controller()
        yield env
    finally:
        env.stop_all()
        named.stop()


def seen_by(env: Env, source: str) -> set[str]:
    return a_values(env.named.port, NAME, source=source) or set()


def serves(env: Env, europe: str, default: str) -> bool:
    return seen_by(env, EUROPE_CLIENT) == {europe} and seen_by(env, OTHER_CLIENT) == {default}


def post(env: Env, action: str, body: dict[str, object]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{env.api_port}/v1/{action}", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_each_network_is_answered_by_its_view_and_fails_over_on_its_own(
        views_env: Env) -> None:
    env = views_env
    assert wait_for(lambda: serves(env, europe=WEST, default=EAST), 60), env.log()
    env.stop_region(EAST)  # us-east-1 fails: default moves, europe stays
    assert wait_for(lambda: serves(env, europe=WEST, default=WEST), 30), env.log()
    assert wait_for(lambda: 'failover_network_answers{network="default",region="eu-west-1"} '
                    '1.0' in http_get(env.api_port, "/metrics")[1], 30)
    env.start_region(EAST)
    assert wait_for(lambda: serves(env, europe=WEST, default=EAST), 30), env.log()
    env.stop_region(WEST)  # eu-west-1 fails: europe moves, default stays
    assert wait_for(lambda: serves(env, europe=EAST, default=EAST), 30), env.log()
    def answers() -> dict[str, list[str]]:
        return {r["network"]: r["values"] for r in env.status().get("records", [])
                if r["name"] == NAME}

    assert wait_for(lambda: answers() == {"europe": [EAST], "default": [EAST]}, 30), answers()
    shown = env.cli("status")
    assert shown.returncode == 0, shown.stderr
    assert f"{NAME} A [europe] failover: desired {EAST}, served {EAST}" in shown.stdout, \
        shown.stdout
    code, page = http_get(env.api_port, "/")
    assert code == 200 and "europe" in page and "2 networks" in page


def test_a_drain_and_a_pin_for_one_network_leave_the_other_alone(views_env: Env) -> None:
    env = views_env
    assert wait_for(lambda: serves(env, europe=WEST, default=EAST), 60), env.log()
    code, text = post(env, "drain", {"region": "us-east-1", "network": "default",
                                     "reason": "maintenance for default clients"})
    assert code == 200, text
    assert wait_for(lambda: serves(env, europe=WEST, default=WEST), 30), env.log()
    env.stop_region(WEST)  # us-east-1 is drained for default clients only: europe takes it
    assert wait_for(lambda: seen_by(env, EUROPE_CLIENT) == {EAST}, 30), env.log()
    env.start_region(WEST)
    assert wait_for(lambda: serves(env, europe=WEST, default=WEST), 30), env.log()
    code, text = post(env, "pin", {"name": NAME, "region": "us-east-1", "network": "europe"})
    assert code == 200, text
    assert wait_for(lambda: serves(env, europe=EAST, default=WEST), 30), env.log()
    code, text = post(env, "drain", {"region": "us-east-1", "network": "mars"})
    assert code == 400 and "unknown network 'mars'" in text, text
    bad = env.cli("drain", "us-east-1", "--network", "mars")
    assert bad.returncode == 2 and "unknown network 'mars'" in bad.stderr, bad.stderr
    restored = env.cli("restore", "us-east-1", "--network", "default")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert post(env, "unpin", {"name": NAME, "network": "europe"})[0] == 200
    assert wait_for(lambda: serves(env, europe=WEST, default=EAST), 30), env.log()


def test_a_view_whose_key_the_server_refuses_is_named_in_readyz_and_the_others_written(
        tmp_path: Path) -> None:
    named = viewed_named(tmp_path / "named")
    env = Env(dir=tmp_path, named=named, http_port=free_port(EAST), api_port=free_port())
    try:
        (tmp_path / "default.key").write_text(named.view_keys["default"] + "\n")
        (tmp_path / "europe.key").write_text(named.view_keys["default"] + "\n")  # wrong key
        (tmp_path / "token").write_text(TOKEN + "\n")
        env.config.write_text(CONFIG.format(dns_port=named.port, api_port=env.api_port,
                                            http_port=env.http_port, east=EAST, west=WEST))
        env.start_region(EAST)
        env.start_region(WEST)
        env.start_controller()
        assert wait_for(lambda: seen_by(env, OTHER_CLIENT) == {EAST}, 60), env.log()
        assert wait_for(lambda: env.readyz()[0] == 503 and "view europe" in env.readyz()[1],
                        30), (env.readyz(), env.log())
        assert "view europe" in env.log()
        assert seen_by(env, EUROPE_CLIENT) == set()
    finally:
        env.stop_all()
        named.stop()


def test_networks_with_the_same_news_share_one_history_line(tmp_path: Path) -> None:
    import asyncio

    from failover.controller import Controller
    from failover.probes import ProbeResult
    from failover.state.sqlite import SqliteState
    from tests.builders import config

    cfg = config({"east": ["127.0.1.1"], "west": ["127.0.2.1"]},
                 [{"name": "api.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"],
                   "networks": {"europe": {"order": ["west", "east"]}}},
                  {"name": "www.example.test.", "type": "A", "policy": "failover",
                   "order": ["east", "west"]}],
                 networks={"europe": {"cidrs": ["127.0.0.128/25"]}, "default": {}})
    state = SqliteState(tmp_path / "state.db")
    clock = [1000.0]
    controller = Controller(cfg, state=state, adapter=None, clock=lambda: clock[0])

    def probe(east_ok: bool) -> None:
        for target in controller.targets:
            ok = east_ok or not target.endpoint.startswith("east/")
            controller.on_result(target, ProbeResult(ok, "ok" if ok else "refused", clock[0]))
            clock[0] += 0.1

    async def scenario() -> None:
        probe(True)
        await controller.tick()
        for _ in range(3):
            probe(False)
        await controller.tick()

    try:
        asyncio.run(scenario())
        mark = 1000.3  # after the first tick's decisions
        lines = {e.subject: e for e in state.history(since=mark, kind="decision")}
    finally:
        state.close()
    # www moved the same way in both networks: one line naming both; api moved in
    # default only (europe was on west already)
    assert set(lines) == {"www.example.test. A (europe, default)",
                          "api.example.test. A (default)"}
    assert lines["www.example.test. A (europe, default)"].detail["networks"] == [
        "europe", "default"]
