"""The etcd state store against a real etcd: overrides (and their watch), decisions in
chunks, history in time order, retention, and what the controller reads while etcd is
gone."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator

import pytest

from failover.cluster.etcd import Etcd
from failover.localetcd import LocalEtcd
from failover.state import etcd as etcd_state
from failover.state.etcd import EtcdState
from failover.state.store import Event, Override, OverrideChange
from policies import Decision
from tests.service_env import wait_for
from tests.test_fleet import etcd as etcd


@pytest.fixture
def store(etcd: LocalEtcd) -> Iterator[EtcdState]:
    s = EtcdState(Etcd(etcd.endpoints), "/failover/unit", "us-east-1")
    try:
        yield s
    finally:
        s.close()


def decision(i: int) -> Decision:
    return Decision(name=f"n{i}.example.test.", type="A", ttl=30, policy="failover",
                    regions=("us-east-1",), values=(f"127.0.{i // 250}.{i % 250 + 1}",),
                    shares={"us-east-1": 1.0}, basis="health", reason="first tier healthy",
                    at=1.0, by_region={"us-east-1": ("127.0.0.1",)})


def test_overrides_round_trip_and_another_writers_change_is_seen_by_the_watch(
        store: EtcdState, etcd: LocalEtcd) -> None:
    store.watch()
    other = EtcdState(Etcd(etcd.endpoints), "/failover/unit", "laptop")
    try:
        other.set_override(Override("drain", "us-east-1", "us-east-1", "ops", "maint", 5.0))
        assert wait_for(store.changed_elsewhere, 10)
        assert wait_for(lambda: [o.target for o in store.overrides()] == ["us-east-1"], 10)
        other.set_override(Override("pin", "api.example.test.", "eu-west-1", "ops", "x", 3.0))
        assert wait_for(lambda: [o.kind for o in store.overrides()] == ["pin", "drain"], 10)
        assert other.clear_override("drain", "us-east-1")
        assert not other.clear_override("drain", "us-east-1")
        assert wait_for(lambda: [o.kind for o in store.overrides()] == ["pin"], 10)
    finally:
        other.close()


def test_an_operators_change_is_written_with_its_history_line(store: EtcdState) -> None:
    drained = Override("drain", "us-east-1", "us-east-1", "ops", "maint", 5.0)
    again = Override("drain", "us-east-1", "us-east-1", "ops", "longer", 6.0)
    assert store.change_override(OverrideChange(
        "us-east-1 drained", Event(5.0, "override", "us-east-1", "drained by ops"), set=drained))
    assert store.change_override(OverrideChange(
        "us-east-1 drained", Event(6.0, "override", "us-east-1", "drained again"), set=again))
    # a restore made from what was read before the second drain removes nothing
    assert not store.change_override(OverrideChange(
        "us-east-1 restored", Event(7.0, "override", "us-east-1", "restored"), clear=drained))
    assert store.overrides() == [again]
    assert store.change_override(OverrideChange(
        "us-east-1 restored", Event(8.0, "override", "us-east-1", "restored"), clear=again))
    assert store.overrides() == []
    assert [e.message for e in store.history()] == ["drained by ops", "drained again",
                                                     "restored"]


def test_the_controller_keeps_the_overrides_it_knew_while_etcd_is_gone(
        store: EtcdState, etcd: LocalEtcd, monkeypatch: pytest.MonkeyPatch) -> None:
    store.set_override(Override("drain", "us-east-1", "us-east-1", "ops", "maint", 5.0))
    store.watch()
    assert wait_for(lambda: [o.target for o in store.overrides()] == ["us-east-1"], 10)
    for m in etcd.members:
        etcd.kill(m)
    asked: list[str] = []
    real = store.client.call

    def call(path: str, *args: object, **kwargs: object) -> object:
        asked.append(path)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.client, "call", call)
    # from the cache: a tick never waits on etcd (it does not even ask it)
    assert [o.target for o in store.overrides()] == ["us-east-1"]
    assert asked == []


def test_decisions_in_chunks_written_and_read_whole(store: EtcdState,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_state, "CHUNK", 4096)  # many chunks from a few thousand
    many = [decision(i) for i in range(3000)]
    store.save_decisions(many)
    got = store.load_decisions()
    assert len(got) == 3000 and got[("n7.example.test.", "A")] == many[7]
    # fewer decisions: the chunks past the new count are gone in the same transaction
    store.save_decisions(many[:10])
    assert len(store.load_decisions()) == 10
    kvs, _ = store.client.get_prefix("/failover/unit/decisions/")
    assert len(kvs) == 2  # one chunk and meta


def test_history_in_time_order_filtered_and_pruned(store: EtcdState) -> None:
    events = [Event(1000.0 + i, "decision" if i % 2 else "health", f"s{i}", f"m{i}", {"i": i})
              for i in range(250)]
    store.record(events)  # more than one transaction holds
    last = store.history(limit=5)
    assert [e.message for e in last] == [f"m{i}" for i in range(245, 250)]
    assert [e.detail["i"] for e in store.history(since=1240.0)] == list(range(240, 250))
    decisions = store.history(kind="decision", limit=3)
    assert [e.subject for e in decisions] == ["s245", "s247", "s249"]
    assert store.prune(older_than=1100.0, keep=1000) == 100  # by age
    assert store.prune(older_than=0.0, keep=100) == 50  # by count: the oldest go
    assert [e.message for e in store.history(limit=1000)][:1] == ["m150"]
    assert len(store.history(limit=1000)) == 100
    store.prune(older_than=0.0, keep=100)  # compacts to the previous prune's revision
    assert len(store.history(limit=1000)) == 100


def test_health_and_checks_are_kept_per_vantage(store: EtcdState, etcd: LocalEtcd
                                                ) -> None:
    from failover.health import CheckState, EndpointHealth, HealthSnapshot

    store.save_checks({"us-east-1/a|web|local": CheckState(False, 3.0, 0, "down")})
    store.save_health(HealthSnapshot(4.0, {"us-east-1/a": EndpointHealth(False, "down", 3.0)}))
    other = EtcdState(Etcd(etcd.endpoints), "/failover/unit", "eu-west-1")
    try:
        assert other.load_checks() == {} and other.load_health() is None
        assert store.load_checks()["us-east-1/a|web|local"].healthy is False
        health = store.load_health()
        assert health is not None and not health.endpoints["us-east-1/a"].healthy
    finally:
        other.close()


def test_stored_values_of_the_wrong_shape_are_skipped_and_named_once(
        store: EtcdState, caplog: pytest.LogCaptureFixture) -> None:
    """Whoever can write under the prefix can put anything there: a bad override, check,
    snapshot, decision or event is left out and named by its key, the rest is read."""
    from failover.health import CheckState, EndpointHealth, HealthSnapshot

    p, put = "/failover/unit", store.client.put
    store.set_override(Override("drain", "us-east-1", "us-east-1", "ops", "maint", 5.0))
    put(f"{p}/overrides/drain/eu-west-1", "[1]")
    put(f"{p}/overrides/pin/api", json.dumps({"kind": "pin", "target": "api"}))
    put(f"{p}/overrides/drain/x", "{not json")
    store.save_checks({"us-east-1/a|web|local": CheckState(False, 3.0, 0, "down")})
    checks = json.loads(store.client.get(f"{p}/checks/us-east-1").value)  # type: ignore[union-attr]
    checks["eu-west-1/b|web"] = checks["us-east-1/a|web|local"]  # no vantage part
    checks["eu-west-1/c|web|local"] = {"healthy": "no"}
    put(f"{p}/checks/us-east-1", json.dumps(checks))
    store.save_health(HealthSnapshot(4.0, {"us-east-1/a": EndpointHealth(False, "down", 3.0)}))
    health = json.loads(store.client.get(f"{p}/health/us-east-1").value)  # type: ignore[union-attr]
    health["endpoints"]["eu-west-1/b"] = {"healthy": True, "reason": 7}
    put(f"{p}/health/us-east-1", json.dumps(health))
    store.record([Event(1000.0, "health", "s", "good", {})])
    put(f"{p}/history/{'9' * 15}-000000-x", json.dumps({"at": "soon", "kind": "health"}))
    caplog.set_level(logging.WARNING, logger="failover.state.codec")
    for _ in range(3):  # read at every tick: said once
        assert [o.target for o in store.overrides()] == ["us-east-1"]
    assert list(store.load_checks()) == ["us-east-1/a|web|local"]
    kept = store.load_health()
    assert kept is not None and list(kept.endpoints) == ["us-east-1/a"]
    assert [e.message for e in store.history()] == ["good"]
    said = [r.getMessage() for r in caplog.records]
    for key in ("overrides/drain/eu-west-1", "overrides/pin/api", "overrides/drain/x",
                "eu-west-1/b|web", "eu-west-1/c|web|local", "endpoint eu-west-1/b",
                f"history/{'9' * 15}-000000-x"):
        assert sum(key in line for line in said) == 1, (key, said)


def test_decisions_that_are_not_decisions_are_skipped_not_fatal(
        store: EtcdState, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_state, "MAX_DECISIONS_TEXT", 64 * 1024)
    p, put = "/failover/unit/decisions", store.client.put
    store.save_decisions([decision(1), decision(2)])
    chunk = json.loads(zlib.decompress(store.client.get(f"{p}/000000").value))  # type: ignore[union-attr]
    chunk[1]["last_good"] = [["us-east-1"]]  # half a last_good
    put(f"{p}/000000", zlib.compress(json.dumps(chunk).encode()))
    caplog.set_level(logging.WARNING, logger="failover.state.codec")
    assert list(store.load_decisions()) == [("n1.example.test.", "A")]
    assert "decision n2.example.test." in caplog.text and "last_good" in caplog.text
    for meta, chunk_value in ((b"{}", None), (b'{"chunks": "1"}', None),
                              (b'{"chunks": 1}', b"not zlib"),
                              (b'{"chunks": 1}', zlib.compress(b'{"a": 1}')),
                              (b'{"chunks": 1}', zlib.compress(b"\0" * (1 << 20)))):
        put(f"{p}/meta", meta)
        if chunk_value is not None:
            put(f"{p}/000000", chunk_value)
        assert store.load_decisions() == {}
    assert "inflates to more than 65536 bytes" in caplog.text  # the zip bomb, stopped
