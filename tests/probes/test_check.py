"""Probes against real loopback endpoints, with Route 53's health rules and timing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from failover.config import Config, parse_config
from failover.errors import ConfigError
from failover.probes import ProbeResult, ProbeTarget, targets_for
from failover.probes.check import probe
from tests.fleet import closed_port, fleet, port_free_on_both, self_signed

NEEDLE = "all-systems-go"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def endpoints(cert: dict[str, str]) -> Iterator[dict[str, tuple[str, int]]]:
    spec: list[dict[str, Any]] = [
        {"name": "ok", "behaviour": "ok"},
        {"name": "500", "behaviour": "status:500"},
        {"name": "302", "behaviour": "redirect"},
        {"name": "slow", "behaviour": "slow:1.5"},
        {"name": "hang", "behaviour": "hang"},
        {"name": "close", "behaviour": "close"},
        {"name": "at5000", "behaviour": f"body:5000:{NEEDLE}"},
        {"name": "at5200", "behaviour": f"body:5200:{NEEDLE}"},
        {"name": "echo", "behaviour": "echo"},
        {"name": "tls", "behaviour": "ok", "tls": cert},
        {"name": "tls-echo", "behaviour": "echo", "tls": cert},
        {"name": "v6", "host": "::1", "behaviour": "ok"},
    ]
    both = port_free_on_both()
    spec += [{"name": "both4", "port": both, "behaviour": "ok"},
             {"name": "both6", "host": "::1", "port": both, "behaviour": "ok"}]
    with fleet(spec) as ready:
        yield ready


def target(check: dict[str, Any], address: str = "127.0.0.1", **endpoint: Any) -> ProbeTarget:
    cfg = Config.model_validate({
        "zone": "example.test.", "checks": {"c": check},
        "regions": {"r": {"endpoints": [{"address": address, "check": "c", **endpoint}]}},
        "records": [{"name": "a.example.test.", "type": "CNAME" if address[0].isalpha() else
                     ("AAAA" if ":" in address else "A"), "policy": "latency"}]})
    [t] = targets_for(cfg)
    return t


def run(t: ProbeTarget) -> ProbeResult:
    return asyncio.run(probe(t))


def http(port: int, **fields: Any) -> dict[str, Any]:
    return {"type": "HTTP", "port": port, **fields}


def test_200_is_healthy_with_latency(endpoints: dict) -> None:
    r = run(target(http(endpoints["ok"][1], resource_path="/health")))
    assert r.ok and r.reason == "status 200"
    assert r.connect_ms is not None and r.first_byte_ms is not None and r.latency_ms


def test_500_is_unhealthy(endpoints: dict) -> None:
    r = run(target(http(endpoints["500"][1])))
    assert not r.ok and r.reason == "status 500"


def test_302_is_healthy_and_not_followed(endpoints: dict) -> None:
    r = run(target(http(endpoints["302"][1])))
    assert r.ok and r.reason == "status 302"


def test_slower_than_the_timeout_is_unhealthy(endpoints: dict) -> None:
    r = run(target(http(endpoints["slow"][1], response_timeout=0.5)))
    assert not r.ok and r.reason == "timeout after 0.5 s waiting for the response"
    assert run(target(http(endpoints["slow"][1], response_timeout=3))).ok


def test_hang_after_accept_times_out(endpoints: dict) -> None:
    r = run(target(http(endpoints["hang"][1], response_timeout=0.3)))
    assert not r.ok and r.reason == "timeout after 0.3 s waiting for the response"
    assert r.connect_ms is not None  # the connection itself succeeded


def test_refused(endpoints: dict) -> None:
    r = run(target(http(closed_port())))
    assert not r.ok and r.reason == "connection refused"


def test_closed_without_answer_fails_http_but_passes_tcp(endpoints: dict) -> None:
    port = endpoints["close"][1]
    r = run(target(http(port)))
    assert not r.ok and r.reason in ("connection closed before a response",
                                     "connection reset by the endpoint")
    assert run(target({"type": "TCP", "port": port})).ok
    r = run(target({"type": "TCP", "port": closed_port()}))
    assert not r.ok and r.reason == "connection refused"


@pytest.mark.parametrize("name,found", [("at5000", True), ("at5200", False), ("ok", False)])
def test_search_string_in_the_first_5120_bytes(endpoints: dict, name: str, found: bool) -> None:
    r = run(target({"type": "HTTP_STR_MATCH", "port": endpoints[name][1],
                    "search_string": NEEDLE}))
    assert r.ok is found
    if not found:
        assert r.reason == "search string not found in first 5,120 bytes"


def test_search_is_case_sensitive(endpoints: dict) -> None:
    r = run(target({"type": "HTTP_STR_MATCH", "port": endpoints["at5000"][1],
                    "search_string": NEEDLE.upper()}))
    assert not r.ok


def test_host_header_is_fqdn_with_port(endpoints: dict) -> None:
    port = endpoints["echo"][1]
    r = run(target({"type": "HTTP_STR_MATCH", "port": port, "fqdn": "api.example.test",
                    "search_string": f"host=api.example.test:{port} "}))
    assert r.ok, r.reason
    # without an fqdn the IP stands in, as in Route 53
    r = run(target({"type": "HTTP_STR_MATCH", "port": port,
                    "search_string": f"host=127.0.0.1:{port} "}))
    assert r.ok, r.reason


def test_tls_self_signed_fails_verification_and_passes_without(endpoints: dict) -> None:
    port = endpoints["tls"][1]
    r = run(target({"type": "HTTPS", "port": port, "fqdn": "localhost"}))
    assert not r.ok and r.reason.startswith("TLS certificate not valid: self")
    r = run(target({"type": "HTTPS", "port": port, "fqdn": "localhost", "verify_tls": False},
                   ip="127.0.0.1"))
    assert r.ok and r.reason == "status 200"


def test_tls_sends_sni_from_fqdn(endpoints: dict) -> None:
    port = endpoints["tls-echo"][1]
    r = run(target({"type": "HTTPS_STR_MATCH", "port": port, "fqdn": "api.example.test",
                    "verify_tls": False, "search_string": "sni=api.example.test"},
                   ip="127.0.0.1"))
    assert r.ok, r.reason


def test_ipv6_loopback(endpoints: dict) -> None:
    r = run(target(http(endpoints["v6"][1]), address="::1"))
    assert r.ok, r.reason


def test_fqdn_only_is_resolved(endpoints: dict) -> None:
    # localhost resolves to 127.0.0.1 or ::1 depending on the host; both listen
    r = run(target(http(endpoints["both4"][1]), address="localhost"))
    assert r.ok, r.reason


def test_tls_against_an_internal_ca_with_ca_file(endpoints: dict, cert: dict[str, str],
                                                 tmp_path: Any) -> None:
    port = endpoints["tls"][1]
    check = {"type": "HTTPS", "port": port, "fqdn": "localhost"}
    r = run(target(check, ip="127.0.0.1"))
    assert not r.ok and r.reason.startswith("TLS certificate not valid")
    # the self-signed certificate is its own CA: trusted through ca_file, verified
    r = run(target({**check, "ca_file": cert["cert"]}, ip="127.0.0.1"))
    assert r.ok and r.reason == "status 200", r.reason
    # a ca_file that cannot be read is refused by validation, not found by every probe
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    for bad, said in ((str(tmp_path / "missing.pem"), "cannot read"),
                      (str(tmp_path / "not-a-cert.pem"), "holds no PEM certificate")):
        with pytest.raises(ConfigError, match=f"checks.c.ca_file: .*{said}"):
            parse_config(json.dumps({
                "zone": "example.test.", "checks": {"c": {**check, "ca_file": bad}},
                "regions": {"r": {"endpoints": [{"address": "127.0.0.1", "check": "c"}]}},
                "records": [{"name": "a.example.test.", "type": "A", "policy": "latency"}]}))
