"""Notifications: real HTTP receivers on loopback record what Slack, PagerDuty and a
webhook would get; the controller as a process fails over while a receiver hangs."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from failover.config import Config, parse_config
from failover.errors import ConfigError
from failover.metrics import Metrics
from failover.notify import Notifier
from failover.notify.notice import MAX_ENTRIES, Classifier
from failover.state.store import Event
from tests.service_env import EAST, WEST, Env, http_get, served_east, wait_for


class Receiver:
    """An HTTP server on loopback that records every POST (path, headers, JSON body)
    and answers as told: `ok` (202), a status code, or `hang` (never answers until
    stopped)."""

    def __init__(self, behaviour: str = "ok") -> None:
        self.behaviour = behaviour
        self.got: list[dict[str, Any]] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.got.append({"path": self.path, "headers": dict(self.headers),
                                     "raw": body, "json": json.loads(body)})
                if receiver.behaviour == "hang":
                    receiver.release.wait(60)
                    return
                code = 202 if receiver.behaviour == "ok" else int(receiver.behaviour)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


def receiver(made: list[Receiver], behaviour: str = "ok") -> Receiver:
    r = Receiver(behaviour)
    made.append(r)
    return r


def config(*sinks: dict[str, Any]) -> Config:
    return Config.model_validate({
        "zone": "example.test.",
        "regions": {"us-east-1": {"endpoints": [{"address": "127.0.1.1"}]},
                    "eu-west-1": {"endpoints": [{"address": "127.0.2.1"}]}},
        "records": [{"name": "api.example.test.", "type": "A", "policy": "failover",
                     "order": ["us-east-1", "eu-west-1"]}],
        "notify": list(sinks)})


def notifier(cfg: Config) -> tuple[Notifier, Metrics]:
    metrics = Metrics()
    n = Notifier(metrics)
    n.configure(cfg)
    return n, metrics


def failover(name: str, region: str = "us-east-1", reason: str = "eu-west-1 serves: "
             "us-east-1 unhealthy since 10:00:00 after 3 failures: connection refused"
             ) -> Event:
    return Event(time.time(), "decision", f"{name} A", reason,
                 {"values": ["127.0.2.1"], "basis": "health", "left": [region]})


def failback(name: str, region: str = "us-east-1") -> Event:
    return Event(time.time(), "decision", f"{name} A", f"{region} serves: healthy again",
                 {"values": ["127.0.1.1"], "basis": "health", "returned": [region]})


def metric(metrics: Metrics, name: str, sink: str) -> float:
    value = metrics.registry.get_sample_value(name, {"sink": sink})
    return value or 0.0


# --------------------------------------------------------------------------- slack

def test_a_10000_name_failover_is_one_slack_message_naming_the_count(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    slack = receiver(receivers)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    n, metrics = notifier(config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL"}))
    try:
        # one decision round, as the decide thread records it: in two halves with a
        # pause between (a round takes tens of milliseconds), within the settle time
        for i in range(10_000):
            n.offer(failover(f"n{i:05d}.example.test."))
            if i == 5_000:
                time.sleep(0.1)
        assert wait_for(lambda: metric(metrics, "failover_notify_sent_total", "slack") == 1,
                        timeout=20)
        [msg] = slack.got
        assert set(msg["json"]) == {"text"}  # Slack's incoming-webhook shape
        text = msg["json"]["text"]
        assert "Failover: 10,000 answers moved away from us-east-1" in text
        assert "n00000.example.test. A" in text and "and 9,995 more" in text
        assert "Why: eu-west-1 serves: us-east-1 unhealthy since 10:00:00" in text
        assert "n09999" not in text
        [status] = n.status()
        assert status["last"]["ok"] and status["last"]["notices"] == 10_000
        assert status["waiting"] == 0 and status["sent"] == 1
    finally:
        n.close()


def test_the_events_filter_and_min_interval_coalescing(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    slack = receiver(receivers)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    n, _ = notifier(config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL",
                                  "events": ["failover", "failback"], "min_interval": "3s"}))
    try:
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: len(slack.got) == 1, timeout=10)
        first_sent = time.monotonic()
        # within min_interval: an override (filtered out), a failback, a second failback
        n.offer(Event(time.time(), "override", "controller", "overrides in force: drain x",
                      {"in_force": [{"kind": "drain", "target": "eu-west-1",
                                     "region": "eu-west-1", "at": 1.0, "who": "ops",
                                     "why": "maintenance"}]}))
        n.offer(failback("api.example.test."))
        n.offer(failback("www.example.test."))
        assert wait_for(lambda: len(slack.got) == 2, timeout=10)
        assert time.monotonic() - first_sent >= 2.5  # held back until min_interval passed
        text = slack.got[1]["json"]["text"]
        assert "Failback: 2 answers back on us-east-1" in text
        assert "drained" not in text  # not one of this sink's events
    finally:
        n.close()


# ----------------------------------------------------------------------- pagerduty

def test_pagerduty_triggers_on_failover_and_resolves_on_failback(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    pd = receiver(receivers)
    monkeypatch.setenv("PD_KEY", "R0UT1NGKEY0123456789abcdefabcdef")
    n, _ = notifier(config({"type": "pagerduty", "routing_key_env": "PD_KEY",
                            "endpoint": pd.url, "min_interval": 0}))
    try:
        n.offer(failover("api.example.test.", reason="x" * 3000))
        assert wait_for(lambda: len(pd.got) == 1, timeout=10)
        trigger = pd.got[0]["json"]
        assert set(trigger) == {"routing_key", "event_action", "dedup_key", "payload"}
        assert trigger["routing_key"] == "R0UT1NGKEY0123456789abcdefabcdef"
        assert trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == "failover/failover/region/us-east-1"
        p = trigger["payload"]
        assert set(p) == {"summary", "source", "severity", "timestamp", "component", "group",
                          "class", "custom_details"}
        assert len(p["summary"]) <= 1024 and p["summary"].startswith(
            "Failover: 1 answer moved away from us-east-1 (api.example.test. A)")
        assert p["severity"] == "critical" and p["component"] == "us-east-1"
        assert p["group"] == "example.test." and p["class"] == "failover"
        assert p["source"].startswith("failover@")
        assert time.strptime(p["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
        assert p["timestamp"].endswith("Z")
        assert p["custom_details"]["answers"] == 1
        assert p["custom_details"]["first"] == ["api.example.test. A"]
        n.offer(failback("api.example.test."))
        assert wait_for(lambda: len(pd.got) == 2, timeout=10)
        resolve = pd.got[1]["json"]
        assert resolve == {"routing_key": "R0UT1NGKEY0123456789abcdefabcdef",
                           "event_action": "resolve",
                           "dedup_key": "failover/failover/region/us-east-1"}
    finally:
        n.close()


def test_a_flapping_region_is_one_incident(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    pd = receiver(receivers, "hang")
    monkeypatch.setenv("PD_KEY", "k" * 32)
    n, _ = notifier(config({"type": "pagerduty", "routing_key_env": "PD_KEY",
                            "endpoint": pd.url, "min_interval": 0, "timeout": 1,
                            "attempts": 1}))
    try:
        n.offer(failover("api.example.test.", "eu-west-1"))  # another incident, first
        assert wait_for(lambda: len(pd.got) == 1, timeout=10)
        pd.behaviour = "ok"
        # while that one is being sent: us-east-1 flaps three times, and ends down
        for _ in range(3):
            n.offer(failover("api.example.test."))
            n.offer(failback("api.example.test."))
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: len(pd.got) == 2, timeout=15)
        assert wait_for(lambda: n.status()[0]["waiting"] == 0 and not n.status()[0]["sending"],
                        timeout=10)
        assert len(pd.got) == 2  # one event for us-east-1, not seven
        event = pd.got[1]["json"]
        assert event["event_action"] == "trigger"
        assert event["dedup_key"] == "failover/failover/region/us-east-1"
        assert event["payload"]["custom_details"]["answers"] == 4
    finally:
        n.close()


# ------------------------------------------------------------------------- webhook

def test_the_webhook_gets_our_event_json_signed_with_the_secret_file(
        receivers: list[Receiver], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = receiver(receivers)
    (tmp_path / "hook.url").write_text(hook.url + "\n")
    (tmp_path / "hook.key").write_text("a-shared-secret\n")
    (tmp_path / "hook.key").chmod(0o600)
    (tmp_path / "hook.url").chmod(0o600)
    cfg = config({"type": "webhook", "url_file": str(tmp_path / "hook.url"),
                  "secret_file": str(tmp_path / "hook.key")})
    n, _ = notifier(cfg)
    try:
        n.offer(Event(time.time(), "controller", "readiness", "/readyz degraded (1 problem(s))",
                      {"degraded": True, "problems": ["DNS failing for 3 s: refused"]}))
        assert wait_for(lambda: len(hook.got) == 1, timeout=10)
        got = hook.got[0]
        stamp = got["headers"]["X-Failover-Timestamp"]
        expected = hmac.new(b"a-shared-secret", stamp.encode() + b"." + got["raw"],
                            hashlib.sha256).hexdigest()
        assert got["headers"]["X-Failover-Signature"] == "sha256=" + expected
        [notice] = got["json"]["notices"]
        assert notice["kind"] == "degraded" and not notice["resolve"]
        assert notice["message"] == "DNS failing for 3 s: refused"
        assert notice["events"][0]["kind"] == "controller"
        assert notice["events"][0]["detail"]["problems"] == ["DNS failing for 3 s: refused"]
        assert got["json"]["zone"] == "example.test."
    finally:
        n.close()


# ------------------------------------------------ failing receivers, bounded memory

def test_a_receiver_answering_500_is_retried_then_counted_failed(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    bad = receiver(receivers, "500")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", bad.url)
    n, metrics = notifier(config({"type": "slack", "name": "ops", "attempts": 3,
                                  "url_env": "SLACK_WEBHOOK_URL"}))
    try:
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: metric(metrics, "failover_notify_failed_total", "ops") == 1,
                        timeout=20)
        assert len(bad.got) == 3  # the first attempt and two retries
        last = n.status()[0]["last"]
        assert last["ok"] is False and last["code"] == 500 and last["attempts"] == 3
        assert bad.url not in json.dumps(n.status())  # the URL holds a credential
        assert metric(metrics, "failover_notify_sent_total", "ops") == 0
    finally:
        n.close()


def test_a_hanging_receiver_holds_nobody_and_its_backlog_is_bounded(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    hung = receiver(receivers, "hang")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hung.url)
    n, metrics = notifier(config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL",
                                  "min_interval": 0, "timeout": 30, "attempts": 1}))
    try:
        n.offer(failover("first.example.test."))
        assert wait_for(lambda: n.status()[0]["sending"], timeout=10)
        # the sink hangs: offering is still a dict update, and distinct notices beyond
        # MAX_ENTRIES are dropped and counted instead of piling up
        t0 = time.perf_counter()
        for i in range(MAX_ENTRIES + 50):
            n.offer(failover("api.example.test.", f"region-{i}"))
        took = time.perf_counter() - t0
        assert took < 1.0, took
        status = n.status()[0]
        assert status["waiting"] == MAX_ENTRIES and status["dropped"] == 50
        assert metric(metrics, "failover_notify_dropped_total", "slack") == 50
    finally:
        t0 = time.perf_counter()
        n.close()
        assert time.perf_counter() - t0 < 5  # stopping does not wait for the hang


def test_an_unreachable_receiver_fails_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from failover.localdns import free_port

    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/x")
    n, metrics = notifier(config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL",
                                  "attempts": 2}))
    try:
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: metric(metrics, "failover_notify_failed_total", "slack") == 1,
                        timeout=20)
        assert n.status()[0]["last"]["error"] == "cannot connect"
    finally:
        n.close()


# -------------------------------------------------------------------- classifying

def test_decisions_overrides_drills_and_readiness_map_onto_the_five_kinds() -> None:
    c = Classifier()
    [n] = c.notices(failover("api.example.test."))
    assert (n.kind, n.incident, n.resolve) == ("failover", "region/us-east-1", False)
    [n] = c.notices(failback("api.example.test."))
    assert (n.kind, n.incident, n.resolve) == ("failback", "region/us-east-1", True)
    # a latency move between healthy regions, a health flip: nothing to tell
    assert c.notices(Event(0, "decision", "x A", "closer", {"values": ["1.2.3.4"]})) == []
    assert c.notices(Event(0, "health", "us-east-1/a", "unhealthy")) == []

    def in_force(*overrides: dict[str, Any]) -> Event:
        return Event(0, "override", "controller", "overrides in force",
                     {"in_force": list(overrides)})

    drain = {"kind": "drain", "target": "eu-west-1", "region": "eu-west-1", "at": 1.0,
             "who": "ops@host", "why": "maintenance"}
    drill = {"kind": "fault", "target": "us-east-1", "region": "us-east-1", "at": 2.0,
             "who": "ops@host", "why": "drill"}
    [n] = c.notices(in_force(drain))
    assert (n.kind, n.message) == ("override", "eu-west-1 drained by ops@host: maintenance")
    [n] = c.notices(in_force(drain, drill))
    assert n.kind == "drill" and n.message.startswith("drill of us-east-1 started by ops@host")
    # the drill's own failover and failback are the drill, not an incident
    assert [x.kind for x in c.notices(failover("api.example.test."))] == ["drill"]
    [lifted, ended] = c.notices(in_force())
    assert (lifted.kind, lifted.resolve) == ("override", True)
    assert (ended.kind, ended.resolve, ended.message) == ("drill", True,
                                                          "drill of us-east-1 ended")
    assert [x.kind for x in c.notices(failback("api.example.test."))] == ["drill"]
    assert [x.kind for x in c.notices(failover("api.example.test."))] == ["failover"]
    [n] = c.notices(Event(0, "controller", "readiness", "degraded",
                          {"degraded": True, "problems": ["state store failing"]}))
    assert (n.kind, n.resolve, n.message) == ("degraded", False, "state store failing")


def test_only_the_writer_tells_and_a_dry_run_tells_nothing() -> None:
    from failover.control.house import House

    class Member:
        vantage = "eu"

    told: list[Event] = []

    class Spy:
        def offer(self, e: Event) -> None:
            told.append(e)

    house = House(state=None, member=Member(), dry_run=False,  # type: ignore[arg-type]
                  force=False, clock=time.time, reconcile_interval=1.0)
    house.notifier = Spy()  # type: ignore[assignment]
    house.event("decision", "a A", "moved", {"left": ["x"]})
    assert told == []  # a follower: the leader tells
    house.leading = 3
    house.event("decision", "a A", "moved", {"left": ["x"]})
    assert len(told) == 1
    house.dry_run = True
    house.event("decision", "a A", "moved", {"left": ["x"]})
    assert len(told) == 1


# --------------------------------------------------------------------------- config

def test_urls_and_keys_inline_are_refused_without_echoing_them(tmp_path: Path) -> None:
    base = (tmp_path / "x.yaml")
    text = """zone: example.test.
regions: {a: {endpoints: [{address: 127.0.0.1}]}}
records: [{name: api.example.test., type: A, policy: failover, order: [a]}]
notify:
  - {type: slack, url: "https://hooks.slack.com/services/T0/B0/SECRETTOKEN"}
  - {type: pagerduty, routing_key: SECRETROUTINGKEY}
  - {type: webhook, url_env: HOOK}
  - {type: webhook, url_env: HOOK, url_file: ./f}
"""
    base.write_text(text)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, str(base), tmp_path)
    said = str(caught.value) + "".join(f"{i}" for i in getattr(caught.value, "issues", []))
    assert "notify[0].url: inline URLs are not allowed" in said
    assert "use url_env or url_file" in said
    assert "notify[1].routing_key: inline routing keys are not allowed" in said
    assert "notify[3]: give exactly one of url_env or url_file" in said
    assert "notify[2]" not in said
    assert "SECRETTOKEN" not in said and "SECRETROUTINGKEY" not in said


def test_a_sink_whose_secret_is_missing_fails_visibly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    n, metrics = notifier(config({"type": "slack", "url_env": "NOT_SET_ANYWHERE",
                                  "min_interval": 0}))
    try:
        assert "NOT_SET_ANYWHERE is not set" in n.status()[0]["error"]
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: metric(metrics, "failover_notify_failed_total", "slack") == 1,
                        timeout=10)
    finally:
        n.close()


# ---------------------------------------------------------------- the controller

NOTIFY = """notify:
  - {{type: slack, url_env: SLACK_WEBHOOK_URL, min_interval: 0, timeout: {timeout}}}
  - {{type: pagerduty, routing_key_env: PD_ROUTING_KEY, endpoint: "{pd}", min_interval: 0,
     events: [failover, failback, degraded, override], timeout: {timeout}}}
"""


def rto(env: Env, slack_url: str, pd_url: str, timeout: float = 2,
        busy: list[Receiver] | None = None) -> float:
    """Seconds from us-east-1 going down to named answering eu-west-1. With `busy`,
    those receivers are first given something to hang on (a drain of eu-west-1, undone),
    so that the failover happens while they hang."""
    env.write_config()
    env.config.write_text(env.config.read_text() + NOTIFY.format(pd=pd_url, timeout=timeout))
    env.start_controller(env={"SLACK_WEBHOOK_URL": slack_url,
                              "PD_ROUTING_KEY": "0123456789abcdef0123456789abcdef"})
    assert wait_for(served_east(env)), env.log()
    if busy:
        assert env.cli("drain", "eu-west-1", "--reason", "test").returncode == 0
        assert wait_for(lambda: all(r.got for r in busy), timeout=10)
        assert env.cli("restore", "eu-west-1").returncode == 0
        assert wait_for(lambda: env.status().get("overrides") == [], timeout=10)
    t0 = time.monotonic()
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=15, step=0.02), env.log()
    return time.monotonic() - t0


def test_the_controller_tells_slack_and_pagerduty_and_shows_it(
        env: Env, receivers: list[Receiver]) -> None:
    slack, pd = receiver(receivers), receiver(receivers)
    took = rto(env, slack.url, pd.url)
    assert wait_for(lambda: any("moved away from us-east-1" in g["json"]["text"]
                                for g in slack.got), timeout=15), (slack.got, env.log())
    text = next(g["json"]["text"] for g in slack.got if "moved away" in g["json"]["text"])
    assert "api.example.test. A" in text and "us-east-1 unhealthy" in text
    assert wait_for(lambda: any(g["json"]["event_action"] == "trigger" for g in pd.got),
                    timeout=15)
    trigger = next(g["json"] for g in pd.got if g["json"]["event_action"] == "trigger")
    assert trigger["dedup_key"] == "failover/failover/region/us-east-1"
    env.start_region(EAST)
    assert wait_for(served_east(env), timeout=15), env.log()
    assert wait_for(lambda: any(g["json"]["event_action"] == "resolve" for g in pd.got),
                    timeout=15)
    resolve = next(g["json"] for g in pd.got if g["json"]["event_action"] == "resolve")
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert wait_for(lambda: any("back on us-east-1" in g["json"]["text"] for g in slack.got),
                    timeout=15)

    def shown() -> bool:
        sinks = {s["sink"]: s for s in env.status().get("notify", [])}
        return (set(sinks) == {"slack", "pagerduty"} and sinks["pagerduty"]["sent"] >= 2
                and sinks["pagerduty"]["last"]["ok"])
    assert wait_for(shown, timeout=10), env.status().get("notify")
    _, metrics = http_get(env.api_port, "/metrics")
    assert 'failover_notify_sent_total{sink="pagerduty"} 2.0' in metrics
    assert "0123456789abcdef0123456789abcdef" not in env.log()
    print(f"RTO with receivers answering: {took:.2f} s")


def test_a_hanging_receiver_does_not_delay_failover(
        env: Env, receivers: list[Receiver]) -> None:
    hung_slack, hung_pd = receiver(receivers, "hang"), receiver(receivers, "hang")
    # a long timeout: every delivery hangs for the whole failover
    hanging = rto(env, hung_slack.url, hung_pd.url, timeout=30,
                  busy=[hung_slack, hung_pd])
    # still waiting for their first answers (/status is rebuilt every 2 s)
    assert wait_for(lambda: all(s["sending"] and s["waiting"] for s in env.status()["notify"]),
                    timeout=10), env.status()["notify"]
    assert len(hung_slack.got) == 1 and len(hung_pd.got) == 1
    env.stop_controller()
    ok_slack, ok_pd = receiver(receivers), receiver(receivers)
    env.start_region(EAST)
    answering = rto(env, ok_slack.url, ok_pd.url)
    print(f"RTO with hanging receivers: {hanging:.2f} s; with receivers answering: "
          f"{answering:.2f} s")
    # failure_threshold 2 at 1 s intervals: about 2 s either way; loosely, the hang adds
    # nothing like its 30 s timeout
    assert hanging < answering + 3.0, (hanging, answering)


def test_a_reload_keeps_the_same_sinks_and_takes_up_a_rotated_url(
        receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = receiver(receivers), receiver(receivers)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", old.url)
    cfg = config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL", "min_interval": 0})
    n, _ = notifier(cfg)
    try:
        kept = n.outboxes
        n.configure(config({"type": "slack", "url_env": "SLACK_WEBHOOK_URL",
                            "min_interval": 0}))
        assert n.outboxes == kept  # nothing changed: same sinks, same counts
        monkeypatch.setenv("SLACK_WEBHOOK_URL", new.url)  # rotated, then SIGHUP
        n.configure(cfg)
        n.offer(failover("api.example.test."))
        assert wait_for(lambda: len(new.got) == 1, timeout=10)
        assert old.got == []
    finally:
        n.close()


def test_validate_warns_of_a_sink_secret_not_there(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "f.yaml"
    path.write_text("""zone: example.test.
regions: {a: {endpoints: [{address: 127.0.0.1}]}}
records: [{name: api.example.test., type: A, policy: failover, order: [a]}]
notify: [{type: slack, url_env: NOT_SET_FOR_THIS_TEST}]
""")
    done = subprocess.run([sys.executable, "-m", "failover", "validate", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={k: v for k, v in os.environ.items()
                               if k != "NOT_SET_FOR_THIS_TEST"})
    assert done.returncode == 0, done.stderr
    assert ("warning: notify[0].url: environment variable NOT_SET_FOR_THIS_TEST is not set "
            "(sink slack cannot send without it)") in done.stderr
