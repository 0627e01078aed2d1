"""`failover simulate`: scenarios on a virtual clock through the real health and policy code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from failover.config import load_config
from failover.simulate import load_scenario, simulate
from tests.builders import EXAMPLES, ROOT

CONTRACT = EXAMPLES / "contract.yaml"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", "simulate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("scenario", sorted((EXAMPLES / "scenarios").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_scenarios_hold(scenario: Path) -> None:
    # a scenario's first line names its config ("For examples/X.yaml"); else the contract
    named = re.search(r"For examples/(\S+\.yaml)", scenario.read_text())
    config = EXAMPLES / named.group(1) if named else CONTRACT
    r = cli("--config", str(config), "--scenario", str(scenario))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "expectations hold" in r.stdout


def test_failover_happens_after_threshold_times_interval(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 40\nevents:\n  - {at: 20, region: us-east-1, state: down}\n")
    cfg = load_config(CONTRACT)
    timeline = simulate(cfg, load_scenario(path, cfg))
    flips = [e for e in timeline.events if e["kind"] == "health"]
    assert len(flips) == 1 and not flips[0]["healthy"]
    # failure_threshold 3 at a 1 s interval: the third failed probe is within 3 s
    assert 20 <= flips[0]["t"] <= 23
    writes = [e for e in timeline.events if e["kind"] == "dns"]
    assert writes[-1]["t"] == flips[0]["t"]  # written on the health change, not a tick later
    # deterministic: the same scenario gives the same timeline
    assert simulate(cfg, load_scenario(path, cfg)).events == timeline.events


def test_a_failed_expectation_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 20\nevents:\n  - {at: 5, region: us-east-1, state: down}\n"
                    "expect:\n  - {at: 15, name: api.example.test., answers: [127.0.1.1]}\n")
    r = cli("--config", str(CONTRACT), "--scenario", str(path))
    assert r.returncode == 2
    assert "api.example.test. A serves ['127.0.2.1'], expected ['127.0.1.1']" in r.stderr


def test_a_bad_scenario_names_the_field_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 20\nevents:\n  - {at: 5, region: mars-1, state: down}\n"
                    "  - {at: 6, region: us-east-1, state: sideways}\n")
    r = cli("--config", str(CONTRACT), "--scenario", str(path))
    assert r.returncode == 2
    assert f"{path}:4: events[1].state" in r.stderr
    path.write_text("duration: 20\nevents:\n  - {at: 5, region: mars-1, state: down}\n")
    r = cli("--config", str(CONTRACT), "--scenario", str(path))
    assert r.returncode == 2 and f"{path}:3: events[0].region: unknown region 'mars-1'" in r.stderr


def test_an_expectation_after_the_end_is_an_error_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 90\nevents:\n  - {at: 100, region: us-east-1, state: down}\n"
                    "expect:\n  - {at: 300, name: api.example.test., answers: [127.0.2.1]}\n")
    r = cli("--config", str(CONTRACT), "--scenario", str(path))
    assert r.returncode == 2, r.stdout
    assert "invalid scenario (2 problems)" in r.stderr
    assert f"{path}:3: events[0].at: at 100 s is after the scenario's end (duration 90 s)" \
        in r.stderr
    assert f"{path}:5: expect[0].at: at 300 s is after the scenario's end" in r.stderr
    assert "expectations hold" not in r.stdout


def test_a_scenario_given_as_the_config_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 90\nexpect:\n  - {at: 30, name: api.example.test., "
                    "answers: [127.0.2.1]}\n")
    r = subprocess.run([sys.executable, "-m", "failover", "validate", "--config", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert "this is a scenario file (duration, events, expect), not a config" in r.stderr
    assert "unknown field" not in r.stderr


def test_every_region_down_fails_open_never_empty(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("duration: 30\nevents:\n  - {at: 5, region: us-east-1, state: down}\n"
                    "  - {at: 5, region: eu-west-1, state: down}\n"
                    "expect:\n  - {at: 20, name: api.example.test., answers: [127.0.1.1]}\n"
                    "  - {at: 20, name: www.example.test., answers: [127.0.1.1, 127.0.2.1]}\n")
    r = cli("--config", str(CONTRACT), "--scenario", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    # at every instant of the timeline, not only at 20 s: replay the writes on a zone
    cfg = load_config(CONTRACT)
    timeline = simulate(cfg, load_scenario(path, cfg))
    zone: dict[str, list[str]] = {}
    writes = 0
    for e in timeline.events:
        if e["kind"] == "decision":
            assert e["answers"], e
        if e["kind"] == "dns":
            writes += 1
            for c in e["changes"]:
                assert c["action"] != "delete" and c["values"], c
                zone[c["name"]] = c["values"]
            assert sorted(zone) == ["api.example.test.", "app.example.test.",
                                    "www.example.test."]
    assert writes >= 3  # the first write, the failover to eu-west-1, the failing open
    assert any(e["kind"] == "health" and e["endpoint"].startswith("eu-west-1")
               and not e["healthy"] for e in timeline.events)  # both regions did go down
