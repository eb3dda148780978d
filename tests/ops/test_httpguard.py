"""Request heads bounded in size and time on a real server (uvicorn with the product's guarded
httptools protocol, over real sockets): an endless head is refused 431 before it eats memory, a
head dripped byte by byte (slowloris) is cut off, and ordinary requests, bodies and kept-alive
connections are untouched. These tests also fail loudly when a uvicorn upgrade changes the
private protocol class the guard extends (notifier/runtime/httpguard.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.asyncio.client import connect

from notifier.runtime import httpguard
from notifier.runtime.server import HttpService

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(httpguard.GuardedHttpToolsProtocol, "head_timeout_s", 0.5)
    monkeypatch.setattr(httpguard.GuardedHttpToolsProtocol, "body_timeout_s", 0.5)
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), WebSocketRoute("/ws", ws_echo)])
    service = HttpService(app, host="127.0.0.1", port=0, ping_interval_s=20, max_frame_bytes=65_536)
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        yield service.port
        service.stop()


async def closed_by_server(stream: anyio.abc.ByteStream, within_s: float) -> bytes:
    """What the server sent until it closed the connection (bounded)."""
    got = b""
    with anyio.fail_after(within_s):
        while True:
            try:
                got += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return got


def test_the_guard_still_extends_what_it_overrides() -> None:
    for name in (
        "connection_made",
        "data_received",
        "on_message_begin",
        "on_url",
        "on_headers_complete",
        "on_message_complete",
        "connection_lost",
    ):
        assert name in vars(HttpToolsProtocol), f"uvicorn's HttpToolsProtocol lost {name}: check httpguard"


async def test_ordinary_requests_bodies_and_kept_alive_connections_pass(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/echo", headers={"x-pad": "a" * 8_000})).text == "0"
        big = await client.post("/echo", content=b"b" * 1_000_000)  # a body is not part of the head
        assert (big.status_code, big.text) == (200, "1000000")
        await anyio.sleep(0.8)  # idle past the head timeout between requests: still served
        assert (await client.get("/echo")).status_code == 200


async def test_an_endless_head_is_refused_431(port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        try:
            while sent < 10_000_000:  # unguarded, every line was kept (hundreds of MB)
                await stream.send(b"X-Pad: " + b"a" * 16_000 + b"\r\n")
                sent += 16_009
        except (anyio.BrokenResourceError, OSError):
            pass
        answer = await closed_by_server(stream, 5)
    assert sent < 1_000_000  # cut off early (unguarded, all 10 MB went in)
    # the 431 is written before the close; the reset of what we kept sending may drop it
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]


@pytest.mark.parametrize("pieces", [1, 2, 7])
async def test_a_head_over_the_limit_is_refused_431_however_it_arrives(port: int, pieces: int) -> None:
    """A head that ends inside the read that crosses the limit is refused all the same (the
    parser would have taken it whole)."""
    head = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n"
    step = -(-len(head) // pieces)
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        for at in range(0, len(head), step):
            await stream.send(head[at : at + step])
        answer = await closed_by_server(stream, 5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]


async def test_a_body_in_the_same_read_as_its_head_is_not_counted_as_head(port: int) -> None:
    body = b"b" * 200_000
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for cut in (len(request) - len(body) - 2, len(request) - len(body) - 1):  # its end straddles
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request[:cut])
            await anyio.sleep(0.05)
            await stream.send(request[cut:])
            answer = b""
            with anyio.fail_after(5):
                while not answer.endswith(b"200000"):
                    answer += await stream.receive()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]


async def test_a_request_target_over_8_kib_is_refused_400(port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /" + b"a" * 9_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await closed_by_server(stream, 5)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert b"a" * 100 not in answer  # not echoed back
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        assert (await client.get("/echo", params={"q": "a" * 8_000})).status_code == 200


async def test_a_head_sent_too_slowly_is_cut_off(port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /echo HTTP/1.1\r\nHo")  # and then nothing (or a byte now and then)
        assert await closed_by_server(stream, 5) == b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:  # the same on a kept-alive one
        await stream.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        await anyio.sleep(0.1)
        await stream.send(b"GET /echo HTTP/1.1\r\nHo")
        answer = await closed_by_server(stream, 5)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1


async def test_a_body_that_stalls_is_cut_off(port: int) -> None:
    """A handler waiting for a body (and, for ingest, its slot of the in-flight bound) is freed
    once the body takes too long, instead of for as long as the client keeps the connection."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"ty')
        assert await closed_by_server(stream, 5) == b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:  # one that arrives in time
        await stream.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
        await anyio.sleep(0.2)
        await stream.send(b"cd")
        answer = b""
        with anyio.fail_after(5):
            while not answer.endswith(b"\r\n\r\n4"):
                answer += await stream.receive()
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_websocket_outlives_the_body_timeout(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/ws", proxy=None) as ws:
        await anyio.sleep(1.0)  # twice the body timeout: the upgraded connection is not HTTP's
        await ws.send("hi")
        with anyio.fail_after(5):
            assert await ws.recv() == "hi"
