"""What a valid config does that its author may not expect, said where people look:
weights a server cannot serve (status, /status, the page, history)."""

from __future__ import annotations

import json
import urllib.request

from tests.service_env import EAST, WEST, Env, wait_for

WWW = "www.example.test."
NOTE = "equal shares: this server cannot weight"
WEIGHTED = """  - name: www.example.test.
    type: A
    ttl: 30
    policy: weighted
    weights: {us-east-1: 70, eu-west-1: 30}
"""


def test_status_page_and_history_say_a_weighted_record_is_served_in_equal_shares(
        env: Env) -> None:
    env.config.write_text(env.config.read_text() + WEIGHTED)
    env.start_controller()
    assert wait_for(lambda: env.answer(WWW) == {EAST, WEST}), env.log()
    assert wait_for(lambda: bool(env.record(WWW))), env.log()

    served = env.record(WWW)  # /status
    assert served["shares"] == {"us-east-1": 0.5, "eu-west-1": 0.5}
    assert served["policy_shares"] == {"us-east-1": 0.7, "eu-west-1": 0.3}
    assert served["shares_note"] == NOTE
    with urllib.request.urlopen(f"http://127.0.0.1:{env.api_port}/", timeout=5) as r:
        page = r.read().decode()
    row = next(line for line in page.splitlines() if f"<td>{WWW}<td>" in line)
    assert NOTE in row and "us-east-1 50%, eu-west-1 50%" in row

    data = json.loads(env.cli("status", "--json").stdout)
    [www] = [r for r in data["records"] if r["name"] == WWW]
    assert www["shares"] == {"us-east-1": 0.5, "eu-west-1": 0.5} and www["shares_note"] == NOTE
    text = env.cli("status").stdout
    assert f"served us-east-1 50%, eu-west-1 50% ({NOTE})" in text
    history = env.cli("history").stdout
    assert any(WWW in line and NOTE in line for line in history.splitlines()), history
