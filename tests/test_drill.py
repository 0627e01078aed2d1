"""`failover drill` against the running controller, watched on every authoritative server:
named with a secondary on ::1 (both in the zone's NS set), loopback regions."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from failover.config import parse_config
from failover.dns.authoritative import Server, authoritative_servers
from failover.localdns import LocalNamed, free_port, write_private
from failover.service import adapter_for
from tests.builders import EXAMPLES
from tests.service_env import (
    CHECKS_AND_REGIONS,
    EAST,
    EUROPE_CLIENT,
    WEST,
    Env,
    a_values,
    only_east_healthy,
    overrides_left,
    served_east,
    shifted_clock,
    viewed_named,
    wait_for,
)


def answers_everywhere(named: LocalNamed) -> list[set[str]]:
    """The api record as each authoritative server answers it."""
    out = []
    for host, port in named.servers:
        r = dns.query.udp(dns.message.make_query("api.example.test.", "A"), host, port=port,
                          timeout=1)
        out.append({rd.to_text() for rrset in r.answer for rd in rrset})
    return out


@pytest.mark.secondary
@pytest.mark.parametrize("mode", ["drain", "fail-checks"])
def test_drill_times_every_authoritative_server_there_and_back(env: Env, mode: str) -> None:
    env.start_controller()
    assert wait_for(lambda: answers_everywhere(env.named) == [{EAST}, {EAST}]), env.log()
    r = env.cli("drill", "us-east-1", "--mode", mode, "--json", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    # found from the zone's NS set: the primary and the secondary, on the same port
    assert report["servers_from"] == "the NS set of example.test."
    port = env.named.port
    assert report["servers"] == [f"127.0.0.1:{port} (ns1.example.test)",
                                 f"[::1]:{port} (ns2.example.test)"]
    [rec] = report["records"]
    assert rec["record"] == "api.example.test. A" and rec["before"] == [EAST]
    assert set(rec["servers"]) == set(report["servers"])
    for t in rec["servers"].values():  # served: the first server; total: the last
        assert rec["served_s"] <= t["served_s"] <= rec["total_s"]
        assert 0 <= t["back_s"] <= rec["back_s"]
    # in causal order: decided, then written (the controller's history), and decided
    # before any server answered the new way. A query may see an update before its
    # acknowledgement reaches the controller: the write and the answers are not ordered
    assert 0 < rec["detection_s"] <= rec["write_s"]
    assert rec["detection_s"] <= rec["served_s"] <= rec["total_s"] == report["total_s"]
    # why it moved, as the controller decided it: the drain, or the region's checks really
    # failing (failure_threshold 2) rather than a drain; how long it took is measured by
    # bench/failover.py, not asserted here
    moved = [e["message"] for e in json.loads(env.cli("history", "--json").stdout)
             if e["kind"] == "decision" and e["subject"] == "api.example.test. A"
             and e["detail"]["values"] == [WEST]]
    assert moved and (("us-east-1 drained by operator" in moved[-1]) if mode == "drain" else
                      ("us-east-1 unhealthy since" in moved[-1]
                       and "after 2 failures: drill: checks made to fail" in moved[-1])), moved
    assert answers_everywhere(env.named) == [{EAST}, {EAST}]
    history = json.loads(env.cli("history", "--json").stdout)
    assert any(e["kind"] == "drill" and e["detail"]["records"] == report["records"]
               for e in history)
    assert overrides_left(env) == []  # the drill left nothing behind


@pytest.mark.secondary
def test_a_secondary_that_does_not_follow_fails_the_drill_naming_it(env: Env) -> None:
    env.start_controller()
    assert wait_for(lambda: answers_everywhere(env.named) == [{EAST}, {EAST}]), env.log()
    conf = env.named.directory / "named.conf"  # the primary stops sending NOTIFY
    conf.write_text(conf.read_text().replace("notify explicit;", "notify no;"))
    env.named.rndc("reconfig")
    r = env.cli("drill", "us-east-1", "--timeout", "3")
    assert r.returncode == 1, r.stdout + r.stderr
    port = env.named.port
    assert f"api.example.test. A at [::1]:{port} (ns2.example.test)" in r.stderr
    assert "SOA serials of example.test.:" in r.stderr  # the secondary's is behind
    serials = [int(x) for x in re.findall(r"\(ns\d\.example\.test\) (\d+)", r.stderr)]
    assert len(serials) == 2 and serials[0] > serials[1], r.stderr
    assert overrides_left(env) == []
    assert wait_for(served_east(env), timeout=10)  # the drain was lifted


def test_the_way_back_waits_for_the_failback_delay(env: Env) -> None:
    env.write_config(failback=3)
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    r = env.cli("drill", "us-east-1", "--mode", "fail-checks", "--json", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    # two passing probes (about 1-2 s) and then the 3 s delay before the answer returns
    assert json.loads(r.stdout)["back_total_s"] >= 3.0
    assert env.answer() == {EAST}


def test_drill_reads_the_controllers_times_on_its_clock(env: Env) -> None:
    # the controller's wall clock two minutes behind the drill's (a step since it started)
    shift = env.dir / "wall-shift"
    shift.write_text("-120")
    env.add_token()  # the controller tells its clock to the token's holder only
    env.start_controller(env=shifted_clock(shift))
    assert wait_for(served_east(env)), env.log()
    r = env.cli("drill", "us-east-1", "--json", "--timeout", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    [rec] = json.loads(r.stdout)["records"]
    # read on the drill's clock: decided after the drill began, before the answers moved
    # (on the controller's clock, two minutes off, both would be off by 120 s)
    assert 0 < rec["detection_s"] <= rec["write_s"], rec
    assert rec["detection_s"] <= rec["served_s"] <= rec["total_s"], rec


def test_drill_that_would_strand_a_record_is_refused(env: Env) -> None:
    only_east_healthy(env)
    r = env.cli("drill", "us-east-1")
    assert r.returncode == 2 and "refused" in r.stderr
    assert overrides_left(env) == []


def test_drill_fails_fast_naming_a_server_that_does_not_answer(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    silent = free_port()
    r = env.cli("drill", "us-east-1", "--server", f"127.0.0.1:{env.named.port}",
                "--server", f"127.0.0.1:{silent}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"127.0.0.1:{silent}: no answer" in r.stderr
    assert overrides_left(env) == [] and env.answer() == {EAST}  # nothing was drained
    # and the failed drill is in the history, with why
    history = json.loads(env.cli("history", "--json").stdout)
    failed = [e for e in history if e["kind"] == "drill" and e["detail"].get("failed")]
    assert failed and f"127.0.0.1:{silent}: no answer" in failed[-1]["message"]


def test_drill_needs_the_controller_running(env: Env) -> None:
    r = env.cli("drill", "us-east-1")
    assert r.returncode == 1 and "no controller answers" in r.stderr
    assert overrides_left(env) == []


def test_bad_server_argument_exits_2(env: Env) -> None:
    r = env.cli("drill", "us-east-1", "--server", "ns1 example:53")
    assert r.returncode == 2 and "--server 'ns1 example:53'" in r.stderr
    assert "expected a host name or an IP address" in r.stderr


def test_server_host_names_resolve_to_every_address() -> None:
    cfg = parse_config((EXAMPLES / "contract.yaml").read_text())
    servers, source = authoritative_servers(cfg, None, ["localhost:5353", "127.0.0.2"])
    assert source == "--server"
    assert Server("127.0.0.1", 5353, "localhost") in servers
    assert Server("127.0.0.2", 15353) in servers


@pytest.mark.secondary
def test_servers_from_the_ns_set_or_from_the_config(env: Env) -> None:
    cfg = parse_config(env.config.read_text(), base_dir=env.dir)
    servers, source = authoritative_servers(cfg, adapter_for(cfg))
    port = env.named.port
    assert servers == [Server("127.0.0.1", port, "ns1.example.test."),
                       Server("::1", port, "ns2.example.test.")]
    assert source == "the NS set of example.test."
    text = env.config.read_text() + "drill: {servers: ['::1', '127.0.0.1:5300'], port: 5353}\n"
    cfg = parse_config(text, base_dir=env.dir)
    assert authoritative_servers(cfg, None) == (
        [Server("::1", 5353), Server("127.0.0.1", 5300)], "drill.servers")


def test_a_failback_delay_longer_than_the_timeout_is_named(env: Env) -> None:
    env.write_config(failback=60)
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    # checks made to fail: the way back waits for the failback delay (a drain would not)
    r = env.cli("drill", "us-east-1", "--mode", "fail-checks", "--server",
                f"127.0.0.1:{env.named.port}", "--timeout", "12")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "did not come back within the 12 s of --timeout" in r.stderr  # the whole drill
    assert "api.example.test. (failback_delay 60 s) come back only after" in r.stderr
    assert overrides_left(env) == []


def test_drill_shows_progress_on_a_terminal(env: Env) -> None:
    import pty
    import subprocess
    import sys

    from tests.builders import ROOT

    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    leader, follower = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "failover", "drill", "us-east-1",
                            "--server", f"127.0.0.1:{env.named.port}", "--config",
                            str(env.config)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=follower, text=True, timeout=120, check=False)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert r.returncode == 0, r.stdout
    text = shown.decode()
    # a line per phase, in order, as it happens
    lines = [text.index(line) for line in (
        "us-east-1 drained: waiting for 1 record(s) to move on 1 server(s)",
        f"api.example.test. A moved on 127.0.0.1:{env.named.port} after",
        "restoring us-east-1: waiting for the answers to come back",
        f"api.example.test. A back on 127.0.0.1:{env.named.port} after")]
    assert lines == sorted(lines), text
    # what the drill cannot watch: a resolver's cached answer lives up to the record's TTL
    assert re.search(r"api\.example\.test\. A: .*; behind resolvers up to 3\d\.\d+ s "
                     r"\(TTL 30 s\)", r.stdout), r.stdout
    assert "clients behind caching resolvers also wait up to the record's TTL (30 s)" \
        in r.stdout


VIEWS_CONFIG = """
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
""" + CHECKS_AND_REGIONS + """records:
  - name: api.example.test.
    type: A
    ttl: 5
    policy: failover
    order: [us-east-1, eu-west-1]
    networks:
      europe: {{order: [eu-west-1, us-east-1]}}
  - name: www.example.test.
    type: A
    ttl: 5
    policy: weighted
    weights: {{us-east-1: 1, eu-west-1: 1}}
    networks:
      europe: {{weights: {{us-east-1: 0, eu-west-1: 1}}}}  # us-east-1 on standby
"""


@pytest.fixture
def views_env(tmp_path: Path) -> Iterator[Env]:
    """named with two views (europe by 127.0.0.128/25, default by every other client),
    both regions up, the controller running: api answers europe from eu-west-1 and
    default from us-east-1; www answers europe from eu-west-1, default from both."""
    named = viewed_named(tmp_path / "named")
    env = Env(dir=tmp_path, named=named, http_port=free_port(EAST), api_port=free_port())
    try:
        for view, secret in named.view_keys.items():
            write_private(tmp_path / f"{view}.key", secret + "\n")
        env.config.write_text(VIEWS_CONFIG.format(dns_port=named.port, api_port=env.api_port,
                                                  http_port=env.http_port, east=EAST,
                                                  west=WEST))
        env.start_region(EAST)
        env.start_region(WEST)
        env.start_controller()
        yield env
    finally:
        env.stop_all()
        named.stop()


def per_network(env: Env) -> dict[str, set[str] | None]:
    """What a europe client and a default client are told for api and www."""
    return {f"{who} {name}": a_values(env.named.port, f"{name}.example.test.", source=at)
            for who, at in (("europe", EUROPE_CLIENT), ("default", "127.0.0.1"))
            for name in ("api", "www")}


AS_CONFIGURED = {"europe api": {WEST}, "europe www": {WEST},
                 "default api": {EAST}, "default www": {EAST, WEST}}


def test_drill_times_each_view_and_names_a_network_with_nothing_to_move(
        views_env: Env) -> None:
    env = views_env
    assert wait_for(lambda: per_network(env) == AS_CONFIGURED, 60), env.log()
    r = env.cli("drill", "eu-west-1", "--json", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    port = env.named.port
    europe, default = (f"127.0.0.1:{port} (ns1.example.test, {v})" for v in ("europe", "default"))
    # the one server of the NS set, asked in each view with that view's key
    assert report["servers"] == [europe, default]
    assert report["networks"]["europe"]["moved"] and report["networks"]["default"]["moved"]
    assert report["networks"]["europe"]["records"] == ["api.example.test. A",
                                                       "www.example.test. A"]
    assert report["networks"]["default"]["records"] == ["www.example.test. A"]
    assert report["total_s"] == max(n["total_s"] for n in report["networks"].values())
    assert report["back_total_s"] == max(n["back_total_s"]
                                         for n in report["networks"].values())
    api, www = report["records"]
    # default's api answer never held eu-west-1: nothing to move there, nothing waited for
    assert api["networks"]["default"] == {"moved": False, "before": [EAST]}
    assert list(api["servers"]) == [europe]
    assert api["networks"]["europe"]["before"] == [WEST]
    assert 0 < api["networks"]["europe"]["detection_s"] <= api["networks"]["europe"]["write_s"]
    assert api["networks"]["europe"]["total_s"] == api["total_s"] == api["servers"][europe][
        "served_s"]
    assert www["networks"]["default"]["before"] == [EAST, WEST]
    assert www["networks"]["default"]["moved"] and list(www["servers"]) == [europe, default]
    # europe's api answer moved to us-east-1, in europe's view only (the controller's word)
    history = json.loads(env.cli("history", "--json").stdout)
    moved = [e["detail"]["values"] for e in history if e["kind"] == "decision"
             and e["subject"] == "api.example.test. A (europe)"]
    assert [EAST] in moved, moved
    assert not any(e["kind"] == "decision" and e["subject"] == "api.example.test. A (default)"
                   and e["detail"]["values"] != [EAST] for e in history)
    assert per_network(env) == AS_CONFIGURED and overrides_left(env) == []

    # us-east-1: default's answers hold it, none of europe's do
    r = env.cli("drill", "us-east-1", "--timeout", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "on 1 authoritative server(s), each in views europe, default, from" in r.stdout
    assert "  europe: nothing to move: none of its answers held us-east-1\n" in r.stdout
    assert re.search(r"  default: moved in \d+\.\d+ s, back in \d+\.\d+ s "
                     r"\(api\.example\.test\. A, www\.example\.test\. A\)", r.stdout), r.stdout
    assert f"    {default}: served" in r.stdout and f"    {europe}: served" not in r.stdout
    assert f"    europe: nothing to move (answers {WEST})" in r.stdout
    assert per_network(env) == AS_CONFIGURED and overrides_left(env) == []
