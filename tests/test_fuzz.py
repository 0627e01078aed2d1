"""Fuzzed configs: whatever the input, the loader ends in a Config or a ConfigError (a
clean message, exit 2), never another exception. Fuzzed stored state and fleet views:
decoded or skipped and named, never another exception. Property tests: no network."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from failover.config import Config, parse_config
from failover.errors import ConfigError
from tests.builders import EXAMPLES, ROOT

CONTRACT = (EXAMPLES / "contract.yaml").read_text()
LINES = CONTRACT.splitlines()
HOSTILE = [".nan", ".inf", "-.inf", "-1", "0", "1e309", "99999999999999999999", "null", "~",
           "''", "[]", "{}", "!!binary AAAA", "!!python/object:os.system ls", "&a [*a]",
           "*nowhere", "'" + "x" * 300 + "'", "yes", "0x1F", "2001:db8::1", "127.0.0.1",
           "a b", "_x", "-lead", "\t", "|\n  text", "'\\x00'", "{a: &b [*b]}"]
KEYS = ["zone", "zones", "provider", "type", "server", "port", "tsig", "name", "secret_env",
        "secret_file", "controller", "state", "listen", "refresh", "checks", "web",
        "request_interval", "failure_threshold", "regions", "endpoints", "address", "check",
        "records", "policy", "order", "weights", "ttl", "pools", "pool", "plan",
        "max_delete_share", "ownership", "history", "keep_days"]


def outcome(text: str) -> None:
    try:
        cfg = parse_config(text, source="fuzz.yaml")
    except ConfigError as exc:
        assert exc.issues and str(exc)
        assert exc.exit_code == 2
        return
    assert isinstance(cfg, Config)


@given(st.text(max_size=400))
def test_any_text(text: str) -> None:
    outcome(text)


@given(line=st.integers(0, len(LINES) - 1),
       value=st.sampled_from(HOSTILE) | st.text(max_size=30).map(repr),
       how=st.sampled_from(["value", "delete", "duplicate", "indent"]))
def test_the_contract_with_one_line_broken(line: int, value: str, how: str) -> None:
    lines = list(LINES)
    key, sep, _ = lines[line].partition(":")
    if how == "value" and sep:
        lines[line] = f"{key}: {value}"
    elif how == "delete":
        del lines[line]
    elif how == "duplicate":
        lines.insert(line, lines[line])
    else:
        lines[line] = "   " + lines[line]
    outcome("\n".join(lines) + "\n")


scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
           | st.text(max_size=20) | st.sampled_from(["127.0.0.1", "us-east-1", "A", "HTTP",
                                                      "failover", "api.example.test."]))
trees = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(KEYS), kids, max_size=6), max_leaves=30)


@given(st.dictionaries(st.sampled_from(KEYS), trees, max_size=8))
def test_any_shape_with_the_configs_words(data: dict[str, object]) -> None:
    outcome(yaml.safe_dump(data))


def test_the_cli_ends_hostile_input_with_a_message(tmp_path: Path) -> None:
    """validate: exit 2 (invalid input); plan: exit 1 (its 2 means changes pending)."""
    for i, body in enumerate([b"\xff\xfe\x00garbage", b"a: &a [*a]\n",
                              b"zone: " + b"[" * 500 + b"]" * 500,
                              CONTRACT.replace("request_interval: 1 ",
                                               "request_interval: .nan ").encode()]):
        path = tmp_path / f"c{i}.yaml"
        path.write_bytes(body)
        for command in ("validate", "plan"):
            r = subprocess.run([sys.executable, "-m", "failover", command, "--no-read",
                                "--config", str(path)] if command == "plan" else
                               [sys.executable, "-m", "failover", command, "--config",
                                str(path)], cwd=ROOT, capture_output=True, text=True,
                               timeout=60, check=False)
            assert r.returncode == (2 if command == "validate" else 1), (body[:40], command,
                                                                         r.stderr)
            assert "Traceback" not in r.stderr and "invalid config" in r.stderr


# ---------------------------------------------------------------- stored values
# What the state and the fleet read back (etcd: whoever can write under the prefix) is
# decoded to a value or skipped and named, whatever it holds: never another exception.

STORED_KEYS = ["at", "endpoints", "healthy", "reason", "since", "latency_ms", "recent", "ok",
               "streak", "name", "type", "ttl", "policy", "regions", "values", "shares",
               "basis", "tier", "last_good", "usable", "by_region", "changed_at", "kind",
               "target", "region", "who", "why", "expires", "subject", "message", "detail",
               "ready", "host", "pid", "checks", "us-east-1/127.0.1.1|web",
               "us-east-1/127.0.1.1|web|local", "api.example.test."]
stored_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
                  | st.text(max_size=12) | st.sampled_from(
                      ["A", "failover", "health", "drain", "pin", "us-east-1", "127.0.1.1"]))
stored_trees = st.recursive(stored_scalars, lambda kids: st.lists(kids, max_size=5)
                            | st.dictionaries(st.sampled_from(STORED_KEYS) | st.text(max_size=8),
                                              kids, max_size=6), max_leaves=40)


def good_decision() -> dict[str, object]:
    return {"name": "api.example.test.", "type": "A", "ttl": 30, "policy": "failover",
            "regions": ["us-east-1"], "values": ["127.0.1.1"], "shares": {"us-east-1": 1.0},
            "basis": "health", "reason": "first tier healthy", "at": 1.0, "tier": 0,
            "last_good": [["us-east-1"], ["127.0.1.1"]], "usable": ["us-east-1"],
            "by_region": {"us-east-1": ["127.0.1.1"]}, "changed_at": None, "hold_until": None}


def decoded(decode: Callable[[object, str, Callable[[str, str], None]], object],
            data: object) -> list[tuple[str, str]]:
    """Decode `data`; what was skipped, as (key, why). Any exception fails the test."""
    skipped: list[tuple[str, str]] = []
    decode(data, "fuzz", lambda key, why: skipped.append((key, why)))
    return skipped


@given(stored_trees)
def test_stored_state_of_any_shape_is_decoded_or_skipped(data: object) -> None:
    from failover.state import codec

    for decode in (codec.health_from, codec.checks_from, codec.decisions_from,
                   codec.override_from, codec.event_from):
        for skipped in decoded(decode, data):
            assert skipped[0].startswith("fuzz") and skipped[1]


@given(st.integers(0, len(good_decision()) - 1), stored_trees)
def test_a_decision_with_one_field_broken_is_skipped_and_named(field: int,
                                                               value: object) -> None:
    from failover.state import codec

    good = good_decision()
    key = list(good)[field]
    bad = {**good, key: value}
    skipped: list[tuple[str, str]] = []
    out = codec.decisions_from([good, bad], "decisions", lambda k, w: skipped.append((k, w)))
    assert ("api.example.test.", "A") in out
    if skipped:  # the broken one is named (by its name when it has one) and left out
        assert len(out) == 1 and skipped[0][0].startswith("decisions decision ")


# a view as an instance publishes it, then one place of it broken (or not)
good_entries = st.tuples(st.sampled_from([0, 1]), st.none() | st.floats(0, 2e9),
                         st.text(max_size=8), st.none() | st.floats(0, 1e5)).map(list)
good_views = st.fixed_dictionaries({
    "ready": st.booleans(), "host": st.none() | st.text(max_size=8),
    "pid": st.none() | st.integers(1, 2**22), "at": st.floats(0, 2e9),
    "checks": st.dictionaries(st.sampled_from(["us-east-1/127.0.1.1|web", "e|c", "a|b|c"]),
                              good_entries, min_size=1, max_size=3)})


@st.composite
def one_broken(draw: st.DrawFn) -> object:
    view = draw(good_views)
    where = draw(st.sampled_from(["place", "entry", "key", "ready", "host", "pid", "at",
                                  "checks", "none"]))
    bad = draw(stored_trees | st.sampled_from([2, -1, "1", 1.0, float("inf"), 10**400, True]))
    checks = view["checks"]
    if where in ("ready", "host", "pid", "at", "checks"):
        view[where] = bad
    elif where == "key" and checks:
        key = next(iter(checks))
        checks[draw(st.sampled_from(["|web", "e|", "|", "nobar", ""]))] = checks.pop(key)
    elif where == "entry" and checks:
        checks[next(iter(checks))] = bad
    elif where == "place" and checks:
        checks[next(iter(checks))][draw(st.integers(0, 3))] = bad
    return view


GOOD_OUTCOME = {"at": 1.0, "ok": False, "reason": "refused"}
GOOD_CHECK = {"healthy": False, "since": 1.0, "streak": 1, "reason": "after 2 failures",
              "recent": [GOOD_OUTCOME], "latency_ms": 1.5}
GOOD_ENDPOINT = {"healthy": False, "reason": "after 2 failures", "since": 1.0,
                 "latency_ms": None, "recent": [GOOD_OUTCOME]}


@given(st.sampled_from(["checks", "health"]), st.sampled_from(list(GOOD_CHECK)),
       stored_trees | st.sampled_from([float("inf"), 10**400, -1, True, "1"]),
       st.sampled_from([None, *GOOD_OUTCOME]))
def test_a_check_state_or_endpoint_with_one_field_broken_is_skipped_and_named(
        what: str, field: str, value: object, in_recent: str | None) -> None:
    from failover.state import codec

    good = GOOD_CHECK if what == "checks" else GOOD_ENDPOINT
    bad = dict(good)
    if in_recent is not None:  # one field of a recent outcome instead
        bad["recent"] = [{**GOOD_OUTCOME, in_recent: value}]
    elif field in bad:
        bad[field] = value
    skipped: list[tuple[str, str]] = []
    if what == "checks":
        states = codec.checks_from({"e|c|local": good, "e|d|local": bad}, "checks",
                                   lambda k, w: skipped.append((k, w)))
        kept = {k: (s.healthy, s.since, s.reason, s.latency_ms, s.recent) for k, s in
                states.items()}
    else:
        snapshot = codec.health_from({"at": 1.0, "endpoints": {"e": good, "f": bad}}, "health",
                                     lambda k, w: skipped.append((k, w)))
        assert snapshot is not None
        kept = {k: (h.healthy, h.since, h.reason, h.latency_ms, h.recent) for k, h in
                snapshot.endpoints.items()}
    assert len(kept) + len(skipped) == 2 and len(kept) >= 1
    for healthy, since, reason, latency, recent in kept.values():
        assert type(healthy) is bool and isinstance(reason, str)
        assert all(v is None or (type(v) is float and math.isfinite(v)) for v in (since, latency))
        assert all(type(o.ok) is bool and type(o.at) is float for o in recent)


@given(st.binary(max_size=200) | stored_trees.map(lambda t: json.dumps(t).encode()))
def test_a_view_of_any_shape_is_read_or_refused_with_a_reason(raw: bytes) -> None:
    view_read_or_refused(raw)


@given(one_broken())
def test_a_view_with_one_place_broken_is_read_whole_or_refused(view: object) -> None:
    view_read_or_refused(json.dumps(view).encode())


def view_read_or_refused(raw: bytes) -> None:
    """A View whose every check is as published, or BadView with a reason."""
    from failover.cluster.views import BadView, View, parse

    try:
        view = parse(raw)
    except BadView as exc:
        assert str(exc)
        return
    assert isinstance(view, View) and isinstance(view.ready, bool)
    def number(v: object) -> bool:
        return v is None or (isinstance(v, int | float) and not isinstance(v, bool)
                             and math.isfinite(v))

    data = json.loads(raw)
    assert number(data.get("at")) and (data.get("pid") is None or type(data["pid"]) is int)
    for (endpoint, check), state in view.checks.items():
        assert endpoint and check and isinstance(state.healthy, bool)
        healthy, since, reason, latency = data["checks"][f"{endpoint}|{check}"]
        assert healthy in (0, 1) and type(healthy) is not float  # nothing else is "up"
        assert number(since) and isinstance(reason, str) and number(latency)
        assert latency is None or latency >= 0


def test_the_view_that_stopped_every_instance_is_refused() -> None:
    from failover.cluster.views import BadView, parse

    with pytest.raises(BadView, match=r"us-east-1/127\.0\.1\.1\|web.*not \[healthy"):
        parse(b'{"ready": true, "checks": {"us-east-1/127.0.1.1|web": [1]}}')
