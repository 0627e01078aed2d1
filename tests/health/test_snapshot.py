"""Starting health follows Route 53: new checks healthy, inverted unhealthy, disabled healthy."""

from __future__ import annotations

import pytest

from failover.config import Config, parse_config
from failover.health import assume_regions, initial_snapshot
from tests.builders import EXAMPLES


def one_endpoint(check: dict | None) -> Config:
    ep = {"address": "127.0.1.1"} | ({"check": "c"} if check else {})
    return Config.model_validate({
        "zone": "example.test.", "checks": {"c": check} if check else {},
        "regions": {"r": {"endpoints": [ep]}},
        "records": [{"name": "a.example.test.", "type": "A", "policy": "latency"}]})


@pytest.mark.parametrize("fields,healthy", [
    ({}, True), ({"inverted": True}, False), ({"disabled": True}, True),
    ({"disabled": True, "inverted": True}, False)])
def test_starting_health(fields: dict, healthy: bool) -> None:
    cfg = one_endpoint({"type": "HTTP", **fields})
    assert initial_snapshot(cfg, 0.0).endpoints["r/127.0.1.1"].healthy is healthy


def test_no_check_means_always_healthy() -> None:
    cfg = one_endpoint(None)
    assert initial_snapshot(cfg, 0.0).endpoints["r/127.0.1.1"].healthy


def test_assume_forces_a_region_and_says_so() -> None:
    cfg = parse_config((EXAMPLES / "contract.yaml").read_text())
    snap = assume_regions(initial_snapshot(cfg, 10.0), cfg, {"us-east-1": False}, 20.0)
    h = snap.endpoints["us-east-1/127.0.1.1"]
    assert not h.healthy and h.since == 20.0 and "assumed down" in h.reason
    assert snap.endpoints["eu-west-1/127.0.2.1"].healthy
