"""Fuzzed configs: whatever the input, the loader ends in a Config or a ConfigError (a
clean message, exit 2), never another exception. Property tests: no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
