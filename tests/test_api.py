"""The HTTP endpoint on its own, on a loop in the test: limits, strict bodies, errors,
the Host it answers to, pipelined requests and the bearer token."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from failover.api import BODY_LIMIT, ApiServer, Published, Request, Token, host_refusal, parse_body
from failover.errors import InputError, SecretError
from failover.metrics import Metrics
from failover.page import render
from failover.service import api_token
from failover.state.store import Event
from tests.builders import config


class FakeController:
    """What the endpoint asks of the controller: its clock, its metrics and its page."""

    def __init__(self) -> None:
        self.metrics = Metrics()

    def clock(self) -> float:
        return 1000.0

    def page_maker(self) -> Callable[[], bytes]:
        # two answers in the last hour: the timeline and its coloured legend are drawn
        decisions = [Event(at, "decision", "api.example.test. A", "", {"values": [v]})
                     for at, v in ((500.0, "192.0.2.1"), (900.0, "192.0.2.2"))]
        status = {"zone": "example.test.", "ready": True, "provider": "none",
                  "regions": {"us-east-1": {"drained": False, "healthy": True,
                                            "endpoints": []}}}
        return lambda: render(status, [], decisions, {}, 1000.0,
                              [("api.example.test.", "A", "failover")])


def serve(test: Callable[[ApiServer, list[Any]], Awaitable[None]], *,
          token: Callable[[], Token | None] = lambda: Token("FAILOVER_TOKEN", "s3cret"),
          gate: asyncio.Event | None = None, **limits: Any) -> list[Any]:
    """Run `test` against an endpoint on loopback; returns the changes it was asked for.
    With `gate`, a change is held until the gate opens."""
    asked: list[Any] = []

    async def change(action: str, body: Any, actor: str) -> str:
        asked.append((action, body, actor))
        if gate is not None:
            await gate.wait()
        if getattr(body, "region", "") == "mars-1":
            raise InputError("unknown region 'mars-1'")
        return f"{action} done"

    async def main() -> None:
        published = Published()
        published.ready, published.status = True, b'{"ok": true}\n'
        api = ApiServer("127.0.0.1", 0, FakeController(), published,  # type: ignore[arg-type]
                        token, change, **limits)
        await api.start()
        try:
            await asyncio.wait_for(test(api, asked), timeout=60)
        finally:
            api.stop()

    asyncio.run(main())
    return asked


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()  # the endpoint closes after its reply
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, auth: str = "Bearer s3cret") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_get_endpoints_and_errors() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        code, headers, body = await request(api.port, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 200 and json.loads(body) == {"ok": True}
        assert "X-Failover-Clock" not in headers  # the clock is for the token's holder
        code, headers, _ = await request(api.port, b"DELETE /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 405 and headers["Allow"] == "GET, HEAD"
        code, headers, _ = await request(api.port, b"GET /v1/drain HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 405 and headers["Allow"] == "POST"
        code, _, _ = await request(api.port, b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 404
        code, _, _ = await request(api.port, b"\x16\x03\x01 not http\r\n\r\n")
        assert code == 400
        code, _, body = await request(api.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 200 and b"failover_ready" in body

    serve(test)


def test_readyz_says_why_it_is_degraded() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        api.published.problems = ("DNS failing for 12 s: no answer from 127.0.0.1:53",)
        code, _, body = await request(api.port, b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 503 and b"degraded:\n- DNS failing for 12 s" in body
        api.published.problems = ()
        code, _, body = await request(api.port, b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 200 and body == b"ready\n"

    serve(test)


def test_changes_need_the_token_and_name_it_in_the_history() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        body = b'{"region": "us-east-1", "reason": "maintenance", "by": "alice"}'
        code, headers, _ = await request(api.port, post("/v1/drain", body, "Bearer nope"))
        assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        code, _, _ = await request(api.port, post("/v1/drain", body, ""))
        assert code == 401
        assert not asked
        code, _, reply = await request(api.port, post("/v1/drain", body, "bearer s3cret"))
        assert code == 200 and json.loads(reply)["message"] == "drain done"
        action, model, actor = asked[-1]
        assert action == "drain" and model.reason == "maintenance"
        assert actor == "api token FAILOVER_TOKEN for alice"
        code, _, reply = await request(api.port, post("/v1/drain", b'{"region": "mars-1"}'))
        assert code == 400 and "mars-1" in json.loads(reply)["error"]

    serve(test)


@pytest.mark.parametrize(("body", "says"), [
    (b'{"region": "us-east-1", "force": "false"}', "force: Input should be a valid boolean"),
    (b'{"region": "us-east-1", "reason": "' + b"x" * 1025 + b'"}', "reason: String should have at most 1024"),
    (b'{"region": "us-east-1", "colour": "red"}', "colour: Extra inputs are not permitted"),
    (b'{"region": "us-east-1", "expires": NaN}', "NaN is not a JSON number"),
    (b'{"region": 7}', "region: Input should be a valid string"),
    (b'["us-east-1"]', "must be a JSON object"),
    (b'{"region": ', "not JSON"),
    (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    (b'{"region": "\xff"}', "not UTF-8"),
])
def test_bodies_are_checked_strictly(body: bytes, says: str) -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        code, _, reply = await request(api.port, post("/v1/drain", body))
        assert code == 400 and says in json.loads(reply)["error"], reply
        assert not asked

    serve(test)


def test_a_large_body_is_refused_before_it_is_read() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        head = (b"POST /v1/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret\r\n"
                b"Content-Length: 50000000000\r\n\r\n")
        code, _, reply = await request(api.port, head)  # no body sent: it is not awaited
        assert code == 413 and str(BODY_LIMIT) in json.loads(reply)["error"]
        code, _, _ = await request(api.port, post("/v1/drain", b" " * (BODY_LIMIT + 1)))
        assert code == 413
        code, _, _ = await request(api.port, b"GET /status HTTP/1.1\r\nX-Big: "
                                   + b"a" * 20000 + b"\r\n\r\n")
        assert code == 431
        assert not asked

    serve(test)


def test_a_slow_request_is_dropped_after_the_timeout() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 408 ")

    serve(test, request_timeout=0.5)


def test_slow_connections_beyond_the_cap_make_room_for_a_real_request() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        slow = []
        for _ in range(40):  # five times the cap, each stuck in its headers
            reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
            writer.write(b"GET /status HTTP/1.1\r\n")
            slow.append((reader, writer))
        await asyncio.sleep(0)
        code, _, body = await request(api.port, b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert code == 200 and json.loads(body) == {"ok": True}
        assert len(api.open) <= 8 and api.dropped >= 32
        for _, writer in slow:
            writer.close()

    serve(test, max_connections=8)


@given(action=st.sampled_from(["drain", "restore", "pin", "unpin"]),
       raw=st.one_of(st.binary(max_size=300),
                     st.recursive(st.none() | st.booleans() | st.floats() | st.integers()
                                  | st.text(max_size=40),
                                  lambda kids: st.lists(kids, max_size=4)
                                  | st.dictionaries(st.sampled_from(
                                      ["region", "name", "reason", "force", "for", "expires",
                                       "by", "x"]), kids, max_size=5),
                                  max_leaves=12).map(lambda v: json.dumps(v).encode())))
def test_fuzzed_bodies_end_in_a_model_or_a_message(action: str, raw: bytes) -> None:
    try:
        model = parse_body(action, raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert model.reason is not None and len(model.reason) <= 1024


# ------------------------------------------------------------------ the Host it answers to

def get(path: str, host: str | None = "127.0.0.1", version: str = "1.1",
        extra: str = "") -> bytes:
    return (f"GET {path} HTTP/{version}\r\n" + (f"Host: {host}\r\n" if host is not None else "")
            + extra + "\r\n").encode()


ALLOWED = ["failover.example.com", "10.0.0.5"]  # controller.allowed_hosts, as loaded


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "127.0.0.1:80", "localhost", "localhost:8080",
    "LocalHost.:{port}", "127.8.9.10", "[::1]:{port}", "[::1]",
    "failover.example.com", "Failover.Example.COM.:443", "10.0.0.5:9053",
])
def test_the_listen_address_localhost_loopback_and_allowed_hosts_are_answered(host: str
                                                                               ) -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        for path in ("/status", "/", "/metrics", "/healthz", "/readyz"):
            code, _, body = await request(api.port, get(path, host.format(port=api.port)))
            assert code == 200, (path, body)

    serve(test, allowed_hosts=lambda: ALLOWED)


@pytest.mark.parametrize("host", [
    "attacker.example:9053", "attacker.example", "127.0.0.1.attacker.example",
    "localhost.attacker.example", "failover.example.com.attacker.example", "10.0.0.6",
    "[::2]:9053", "0.0.0.0",
])
def test_a_foreign_host_is_refused_with_421_and_reads_nothing(host: str) -> None:
    # a page of attacker.example whose name was rebound to 127.0.0.1 (DNS rebinding)
    async def test(api: ApiServer, asked: list[Any]) -> None:
        for raw in (get("/status", host), get("/metrics", host), get("/", host),
                    get("/readyz", host, extra="Authorization: Bearer s3cret\r\n"),
                    post("/v1/drain", b'{"region": "us-east-1"}').replace(
                        b"Host: 127.0.0.1", f"Host: {host}".encode())):
            code, headers, body = await request(api.port, raw)
            assert code == 421, (raw, body)
            [error] = json.loads(body).values()  # nothing but the refusal
            assert host in error and "controller.allowed_hosts" in error
            assert "X-Failover-Clock" not in headers
        assert not asked

    serve(test, allowed_hosts=lambda: ALLOWED)


def test_a_missing_or_doubled_host_is_a_bad_request_except_from_http_1_0() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        code, _, body = await request(api.port, get("/status", None))
        assert code == 400 and "needs a Host header" in json.loads(body)["error"]
        code, _, body = await request(api.port, get("/status", "", ))
        assert code == 400 and "needs a Host header" in json.loads(body)["error"]
        code, _, body = await request(api.port, get("/status", None, "1.0"))
        assert code == 200 and json.loads(body) == {"ok": True}
        # the second Host would be the one a proxy or a cache reads
        code, _, body = await request(api.port, get(
            "/status", "127.0.0.1", extra="Host: attacker.example\r\n"))
        assert code == 400 and "more than one Host" in json.loads(body)["error"]
        for odd in ("[not-an-address]:80", "[:::]:80", "a/b", "user@127.0.0.1"):
            code, _, body = await request(api.port, get("/status", odd))
            assert code == 400 and "not a host name or address" in json.loads(body)["error"]

    serve(test)


def _hosted(host: str, version: str = "1.1") -> Request:
    return Request("GET", "/status", version, {"host": host}, (host,), b"")


def test_a_wildcard_listen_answers_any_address_but_only_allowed_names() -> None:
    # an address cannot be rebound to another origin; a name can
    for listen in ("0.0.0.0", "::"):
        assert host_refusal(_hosted("192.0.2.10:9053"), listen, ()) is None
        assert host_refusal(_hosted("[2001:db8::1]:9053"), listen, ()) is None
        refused = host_refusal(_hosted("status.example.org"), listen, ())
        assert refused is not None and refused.code == 421
        assert host_refusal(_hosted("status.example.org"), listen,
                            ["status.example.org"]) is None
    # a listen address that is not a wildcard answers to itself only
    assert host_refusal(_hosted("192.0.2.10:9053"), "192.0.2.10", ()) is None
    refused = host_refusal(_hosted("192.0.2.11:9053"), "192.0.2.10", ())
    assert refused is not None and refused.code == 421
    # listening on a name: that name
    assert host_refusal(_hosted("ops-box.internal:9053"), "ops-box.internal", ()) is None


def test_allowed_hosts_from_the_config_match_however_the_host_is_spelled() -> None:
    record = {"name": "api.example.test.", "type": "A", "policy": "failover",
              "order": ["us-east-1"]}
    cfg = config({"us-east-1": ["127.0.0.1"]}, [record], controller={
        "allowed_hosts": ["Status.Example.ORG.", "[2001:DB8::1]", "192.0.2.7"]})
    allowed = cfg.controller.allowed_hosts
    for host in ("status.example.org:443", "STATUS.example.org.", "[2001:db8::1]:9053",
                 "[2001:db8:0::1]", "192.0.2.7"):
        assert host_refusal(_hosted(host), "127.0.0.1", allowed) is None, host
    for bad in ("http://status.example.org", "status example", "*.example.org", ""):
        with pytest.raises(ValidationError, match=r"allowed_hosts\.0"):
            config({"us-east-1": ["127.0.0.1"]}, [record], controller={"allowed_hosts": [bad]})


def test_every_answer_says_nosniff_and_no_store_and_the_page_has_a_working_csp() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        for raw in (get("/status"), get("/metrics"), get("/nope"), get("/status", "evil.test"),
                    b"\x16\x03\x01 not http\r\n\r\n", get("/"),
                    post("/v1/drain", b"{}", "Bearer nope")):
            code, headers, _ = await request(api.port, raw)
            assert headers["X-Content-Type-Options"] == "nosniff", (raw, code)
            assert headers["Cache-Control"] == "no-store", (raw, code)
        code, headers, page = await request(api.port, get("/"))
        assert code == 200 and b"<svg id=timeline" in page and b"&#9632;" in page
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp
        # every style sheet of the page is allowed by its hash; nothing needs more
        styles = re.findall(rb"<style>(.*?)</style>", page, re.S)
        assert styles
        for css in styles:
            digest = base64.b64encode(hashlib.sha256(css).digest()).decode()
            assert f"'sha256-{digest}'" in csp
        assert b"style=" not in page and b"<script" not in page
        _, headers, _ = await request(api.port, get("/status"))
        assert "Content-Security-Policy" not in headers  # JSON runs nothing

    serve(test)


# ------------------------------------------------------------------ pipelined requests

async def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw` in one write; everything the endpoint sends back until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def test_a_pipelined_request_cannot_lend_its_token_to_the_first() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        first = (b"POST /v1/drain HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 23\r\n\r\n"
                 b'{"region": "us-east-1"}')
        second = get("/status", extra="Authorization: Bearer s3cret\r\n")
        data = await exchange(api.port, first + second)
        assert data.startswith(b"HTTP/1.1 401 ") and data.count(b"HTTP/1.1 ") == 1, data
        assert b"Connection: close" in data
        assert not asked

    serve(test)


def test_a_pipelined_request_changes_neither_the_body_nor_the_answer_of_the_first() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        data = await exchange(api.port, post("/v1/drain", b'{"region": "us-east-1"}')
                              + post("/v1/drain", b'{"region": "eu-west-1"}'))
        assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 ") == 1, data
        assert [(a, m.region) for a, m, _ in asked] == [("drain", "us-east-1")]
        # what follows a complete request is never parsed: not even its errors count
        for after in (b"\x16\x03\x01 not http\r\n\r\n",
                      b"POST /v1/drain HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                      b"GET /status HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"):
            data = await exchange(api.port, get("/status") + after)
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'{"ok": true}\n'), data

    serve(test)


def test_a_request_asking_for_another_protocol_is_refused_and_not_applied() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        raw = post("/v1/drain", b'{"region": "us-east-1"}').replace(
            b"Content-Length", b"Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length")
        data = await exchange(api.port, raw)
        assert data.startswith(b"HTTP/1.1 400 ") and b"upgrades are not served" in data, data
        assert not asked

    serve(test)


def test_bytes_sent_while_the_answer_is_made_do_not_cost_the_answer() -> None:
    gate = asyncio.Event()

    async def test(api: ApiServer, asked: list[Any]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        writer.write(post("/v1/drain", b'{"region": "us-east-1"}'))
        await writer.drain()
        while not asked:  # the drain is being applied
            await asyncio.sleep(0.01)
        writer.write(get("/status") * 3)  # unread by the endpoint when it answers
        await writer.drain()
        gate.set()
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b'"message": "drain done"}\n')

    serve(test, gate=gate)


# ------------------------------------------------------------------ the bearer token

@pytest.mark.parametrize("auth", [
    "Bearer s3cretXYZ",  # a longer token starting with the secret
    "Bearer s3cre",  # the secret's prefix
    "Basic s3cret",  # the secret under another scheme
    "Basic " + base64.b64encode(b"ops:s3cret").decode(),
    "s3cret", "Bearer", "Bearer ", "Token s3cret", "Bearers3cret",
])
def test_only_the_whole_token_as_a_bearer_token_is_accepted(auth: str) -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        code, headers, _ = await request(api.port, post("/v1/drain",
                                                        b'{"region": "us-east-1"}', auth))
        assert code == 401 and "X-Failover-Clock" not in headers
        code, headers, _ = await request(api.port, get("/readyz", extra=f"Authorization: "
                                                                         f"{auth}\r\n"))
        assert code == 200 and "X-Failover-Clock" not in headers
        assert not asked

    serve(test)


def test_the_controllers_clock_is_sent_to_the_tokens_holder_only() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        code, headers, _ = await request(api.port, get("/readyz", extra="Authorization: "
                                                                        "Bearer s3cret\r\n"))
        assert code == 200 and headers["X-Failover-Clock"] == "1000.000000"
        _, headers, _ = await request(api.port, get("/readyz"))
        assert "X-Failover-Clock" not in headers

    serve(test)


def test_an_empty_token_never_matches_even_a_blank_secret() -> None:
    async def test(api: ApiServer, asked: list[Any]) -> None:
        for auth in ("Bearer ", "Bearer", "bearer  ", ""):
            code, _, _ = await request(api.port, post("/v1/drain",
                                                      b'{"region": "us-east-1"}', auth))
            assert code == 401, auth
        assert not asked

    serve(test, token=lambda: Token("FAILOVER_TOKEN", ""))


def test_token_env_names_the_variable_holding_the_token(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    cfg = config({"us-east-1": ["127.0.0.1"]}, [{"name": "api.example.test.", "type": "A",
                                                  "policy": "failover", "order": ["us-east-1"]}],
                 controller={"token_env": "FAILOVER_TEST_API_TOKEN"})
    monkeypatch.delenv("FAILOVER_TEST_API_TOKEN", raising=False)
    with pytest.raises(SecretError, match="FAILOVER_TEST_API_TOKEN"):
        api_token(cfg)
    monkeypatch.setenv("FAILOVER_TEST_API_TOKEN", "from-the-environment")
    token = api_token(cfg)

    async def test(api: ApiServer, asked: list[Any]) -> None:
        body = b'{"region": "us-east-1", "by": "alice"}'
        code, _, _ = await request(api.port, post("/v1/drain", body, "Bearer s3cret"))
        assert code == 401
        code, _, _ = await request(api.port, post("/v1/drain", body,
                                                  "Bearer from-the-environment"))
        assert code == 200
        assert [actor for _, _, actor in asked] == [
            "api token FAILOVER_TEST_API_TOKEN for alice"]

    serve(test, token=lambda: token)
