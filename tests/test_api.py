"""The HTTP endpoint on its own, on a loop in the test: limits, strict bodies, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.api import BODY_LIMIT, ApiServer, Published, Token, parse_body
from failover.errors import InputError
from failover.metrics import Metrics


class FakeController:
    """What the endpoint asks of the controller: its clock and its metrics."""

    def __init__(self) -> None:
        self.metrics = Metrics()

    def clock(self) -> float:
        return 1000.0


def serve(test: Callable[[ApiServer, list[Any]], Awaitable[None]], **limits: Any) -> list[Any]:
    """Run `test` against an endpoint on loopback; returns the changes it was asked for."""
    asked: list[Any] = []

    async def change(action: str, body: Any, actor: str) -> str:
        asked.append((action, body, actor))
        if getattr(body, "region", "") == "mars-1":
            raise InputError("unknown region 'mars-1'")
        return f"{action} done"

    async def main() -> None:
        published = Published()
        published.ready, published.status = True, b'{"ok": true}\n'
        api = ApiServer("127.0.0.1", 0, FakeController(), published,  # type: ignore[arg-type]
                        lambda: Token("FAILOVER_TOKEN", "s3cret"), change, **limits)
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
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_get_endpoints_and_errors() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        code, headers, body = await request(api.port, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 200 and json.loads(body) == {"ok": True}
        assert headers["X-Failover-Clock"] == "1000.000000"
        code, headers, _ = await request(api.port, b"DELETE /status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 405 and headers["Allow"] == "GET, HEAD"
        code, headers, _ = await request(api.port, b"GET /v1/drain HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 405 and headers["Allow"] == "POST"
        code, _, _ = await request(api.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 404
        code, _, _ = await request(api.port, b"\x16\x03\x01 not http\r\n\r\n")
        assert code == 400
        code, _, body = await request(api.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 200 and b"failover_ready" in body

    serve(test)


def test_readyz_says_why_it_is_degraded() -> None:
    async def test(api: ApiServer, _: list[Any]) -> None:
        api.published.problems = ("DNS failing for 12 s: no answer from 127.0.0.1:53",)
        code, _, body = await request(api.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert code == 503 and b"degraded:\n- DNS failing for 12 s" in body
        api.published.problems = ()
        code, _, body = await request(api.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
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
        head = (b"POST /v1/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
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
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
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
        code, _, body = await request(api.port, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
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
