"""`failover probe` against real loopback endpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.builders import ROOT
from tests.fleet import fleet


def write_config(tmp_path: Path, ok_port: int, bad_port: int) -> Path:
    path = tmp_path / "f.yaml"
    path.write_text(f"""
zone: example.test.
checks:
  good: {{type: HTTP, port: {ok_port}, request_interval: 1, failure_threshold: 2}}
  bad: {{type: HTTP, port: {bad_port}, request_interval: 1, failure_threshold: 2}}
regions:
  a: {{endpoints: [{{address: 127.0.0.1, check: good}}]}}
  b: {{endpoints: [{{address: 127.0.0.1, check: bad}}]}}
records:
  - {{name: api.example.test., type: A, policy: failover, order: [a, b]}}
""")
    return path


def failover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


def test_probe_once_and_watch(tmp_path: Path) -> None:
    with fleet([{"name": "ok", "behaviour": "ok"},
                {"name": "bad", "behaviour": "status:503"}]) as ready:
        cfg = write_config(tmp_path, ready["ok"][1], ready["bad"][1])
        r = failover("probe", "--config", str(cfg), "--json")
        assert r.returncode == 0, r.stderr
        rows = {row["endpoint"]: row for row in json.loads(r.stdout)}
        assert rows["a/127.0.0.1"]["ok"] and rows["a/127.0.0.1"]["status"] == "healthy"
        assert rows["b/127.0.0.1"]["reason"] == "status 503"
        assert rows["b/127.0.0.1"]["status"] == "healthy (1/2 failures)"

        text = failover("probe", "--config", str(cfg))
        assert "status 503" in text.stdout and "FAIL" in text.stdout

        r = failover("probe", "--config", str(cfg), "--watch", "--duration", "2.6", "--json")
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        flips = [x for x in lines if x["type"] == "transition"]
        assert [(f["endpoint"], f["healthy"]) for f in flips] == [("b/127.0.0.1", False)]
        assert flips[0]["reason"] == "after 2 failures: status 503"
        assert sum(1 for x in lines if x["type"] == "result" and x["endpoint"] == "a/127.0.0.1") >= 2


def test_a_probe_that_timed_out_shows_timeout_not_its_connect_time(tmp_path: Path) -> None:
    with fleet([{"name": "ok", "behaviour": "ok"}, {"name": "hung", "behaviour": "hang"}]) as ready:
        cfg = write_config(tmp_path, ready["ok"][1], ready["hung"][1])
        cfg.write_text(cfg.read_text().replace("failure_threshold: 2}",
                                               "failure_threshold: 2, response_timeout: 0.3}"))
        once = failover("probe", "--config", str(cfg))
        watched = failover("probe", "--config", str(cfg), "--watch", "--duration", "1.5")
    assert once.returncode == 0, once.stderr
    [hung] = [line.split() for line in once.stdout.splitlines() if line.startswith("b/")]
    assert hung[2:4] == ["FAIL", "timeout"], once.stdout
    line = next(x for x in watched.stdout.splitlines() if " b/127.0.0.1 " in x)
    assert " FAIL timeout: timeout after 0.3 s" in line and " ms" not in line, line
