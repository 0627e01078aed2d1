"""Starting health follows Route 53: new checks healthy, inverted unhealthy, disabled healthy."""

from __future__ import annotations

import pytest

from failover.config import Config, parse_config
from failover.health import assume_regions, initial_snapshot
from failover.health.snapshot import EndpointHealth, HealthSnapshot
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


def test_assume_keeps_what_was_measured_and_says_up_or_down_at_that_time() -> None:
    cfg = parse_config((EXAMPLES / "contract.yaml").read_text())
    measured = HealthSnapshot(at=10.0, endpoints={"us-east-1/127.0.1.1": EndpointHealth(
        False, "after 3 failures: connect timeout", since=5.0, latency_ms=42.0)})
    snap = assume_regions(measured, cfg, {"us-east-1": True, "eu-west-1": False}, 20.0)
    assert snap.at == 20.0
    # an endpoint the snapshot knew keeps its latency; one it did not is made up whole
    assert snap.endpoints["us-east-1/127.0.1.1"] == EndpointHealth(
        True, "assumed up (--assume)", since=20.0, latency_ms=42.0)
    assert snap.endpoints["eu-west-1/127.0.2.1"] == EndpointHealth(
        False, "assumed down (--assume)", since=20.0)


def test_an_endpoints_health_is_found_by_its_region_and_label() -> None:
    cfg = parse_config((EXAMPLES / "contract.yaml").read_text())
    [(region, east)] = [(r, ep) for r, _, _, ep in cfg.all_endpoints() if r == "us-east-1"]
    down = EndpointHealth(False, "after 3 failures: connect timeout", since=5.0)
    snap = HealthSnapshot(at=10.0, endpoints={"us-east-1/127.0.1.1": down})
    assert snap.of(region, east) is down
    [(west_region, west)] = [(r, ep) for r, _, _, ep in cfg.all_endpoints()
                             if r == "eu-west-1"]
    assert snap.of(west_region, west) == EndpointHealth(True, "not yet checked")


def test_the_starting_snapshot_is_taken_at_the_time_given() -> None:
    cfg = parse_config((EXAMPLES / "contract.yaml").read_text())
    assert initial_snapshot(cfg, 5.0).at == 5.0
