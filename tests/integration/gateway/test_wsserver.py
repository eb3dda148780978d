"""The gateway's WebSocket protocol under a real uvicorn, against real `websockets` clients (and a
sans-I/O one where a client must misbehave): limits, keepalive, shutdown, refusals, flow control."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import anyio
import pytest
from anyio.abc import SocketStream
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CLOSED, CONNECTING, OPEN
from websockets.uri import parse_uri

from gateway import wsserver
from gateway.wsserver import (
    FRAME_BURST,
    MAX_FRAGMENTS,
    SEND_FRAMES,
    SERVER_CLOSED,
    WebSocketProtocol,
    frame_header,
    text_frame,
)
from notifier.runtime.server import HttpService
from tests.support import serving

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TIMEOUT_S: Final = 5.0
MAX_FRAME_BYTES: Final = 1024
PING_INTERVAL_S: Final = 0.5  # also the pong timeout
FLOOD_FRAMES: Final = 256
FLOOD_FRAME_BYTES: Final = 256 * 1024  # 64 MB in all: far past every socket buffer on the way
# SEND_FRAMES batches: each frame length class (7-bit, 16-bit, 64-bit), non-ASCII, empty
BATCHES: Final = (["a", "é" * 200, "b" * 70_000, ""], [f"n{i}" for i in range(100)])


class App:
    """Accepts and echoes at /echo, refuses at /refuse (close before accept), denies with an HTTP
    response at /deny, floods at /flood (SEND_FRAMES batches at /flood-frames), sends frames
    in batches between two single ones at /frames, a batch after the client's close at /late;
    records how each connection ended for the app."""

    def __init__(self) -> None:
        self.accepted = anyio.Event()
        self.ended = anyio.Event()
        self.disconnect: Message | None = None
        self.send_error: Exception | None = None
        self.flooded = anyio.Event()
        self.extensions: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            for phase in ("startup", "shutdown"):
                assert (await receive())["type"] == f"lifespan.{phase}"
                await send({"type": f"lifespan.{phase}.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        self.extensions = scope["extensions"]
        try:
            await self._serve(scope["path"], receive, send)
        except OSError as exc:  # uvicorn's ClientDisconnected
            self.send_error = exc
        finally:
            self.ended.set()

    async def _serve(self, path: str, receive: Receive, send: Send) -> None:
        if path == "/refuse":
            await send({"type": "websocket.close", "code": 1008})
            return
        if path == "/deny":
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
            await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"are you?"})
            return
        await send({"type": "websocket.accept"})
        self.accepted.set()
        if path == "/flood":
            for _ in range(FLOOD_FRAMES):
                await send({"type": "websocket.send", "bytes": bytes(FLOOD_FRAME_BYTES)})
            self.flooded.set()
        if path == "/flood-frames":
            for _ in range(FLOOD_FRAMES // 4):
                await send({"type": SEND_FRAMES, "data": frames(["x" * FLOOD_FRAME_BYTES] * 4)})
            self.flooded.set()
        if path == "/frames":
            await send({"type": "websocket.send", "text": "first"})
            for texts in BATCHES:
                await send({"type": SEND_FRAMES, "data": frames(texts)})
            await send({"type": "websocket.send", "text": "last"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        self.disconnect = message
        if path == "/late":
            await send({"type": SEND_FRAMES, "data": frames(["too late"])})


def frames(texts: list[str]) -> bytes:
    return b"".join(text_frame(text.encode()) for text in texts)


@contextlib.asynccontextmanager
async def server(
    app: App, *, ping_interval_s: float = 20.0, protocol: type[WebSocketProtocol] = WebSocketProtocol
) -> AsyncIterator[HttpService]:
    http = HttpService(
        app,
        host="127.0.0.1",
        port=0,
        ping_interval_s=ping_interval_s,  # and the pong timeout, as the product configures it
        max_frame_bytes=MAX_FRAME_BYTES,
        ws=protocol,
    )
    async with serving([http]):
        yield http


def client(http: HttpService, path: str = "/echo", **options: Any) -> connect:
    return connect(f"ws://127.0.0.1:{http.port}{path}", open_timeout=TIMEOUT_S, proxy=None, **options)


async def closed_by_server(ws: ClientConnection) -> tuple[int, str]:
    with anyio.fail_after(TIMEOUT_S), pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def app_ended(app: App) -> None:
    with anyio.fail_after(TIMEOUT_S):
        await app.ended.wait()


async def test_messages_are_echoed_and_the_clients_close_code_reaches_the_app() -> None:
    app = App()
    async with server(app) as http, client(http) as ws:
        await ws.send("hello")
        with anyio.fail_after(TIMEOUT_S):
            assert await ws.recv() == "hello"
        await ws.close(4001, "bye")
        await app_ended(app)
    assert app.disconnect == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}


async def test_a_message_over_the_size_limit_closes_with_1009() -> None:
    app = App()
    async with server(app) as http, client(http) as ws:
        await ws.send("x" * (MAX_FRAME_BYTES + 1))
        code, _ = await closed_by_server(ws)
        await app_ended(app)
    assert code == 1009
    assert app.disconnect is not None and app.disconnect["code"] == 1009


async def test_shutdown_closes_every_connection_with_1012() -> None:
    app = App()
    async with server(app) as http, client(http) as ws:
        with anyio.fail_after(TIMEOUT_S):
            await app.accepted.wait()
        http.stop()
        code, _ = await closed_by_server(ws)
        await app_ended(app)
    assert code == 1012
    assert app.disconnect is not None and app.disconnect["code"] == 1012


async def test_a_client_that_vanishes_is_a_disconnect_for_the_app() -> None:
    app = App()
    async with server(app) as http, client(http) as ws:
        with anyio.fail_after(TIMEOUT_S):
            await app.accepted.wait()
        ws.transport.abort()  # no close frame, just gone
        await app_ended(app)
    assert app.disconnect is not None
    assert app.disconnect["code"] == 1005  # ASGI: no status code was received


async def test_a_close_before_accept_is_http_403() -> None:
    app = App()
    async with server(app) as http:
        with pytest.raises(InvalidStatus) as refused:
            async with client(http, "/refuse"):
                pass
        await app_ended(app)
    assert refused.value.response.status_code == 403


async def test_a_denial_response_is_sent_as_the_app_wrote_it() -> None:
    app = App()
    async with server(app) as http:
        with pytest.raises(InvalidStatus) as denied:
            async with client(http, "/deny"):
                pass
        await app_ended(app)
    assert denied.value.response.status_code == 401
    assert denied.value.response.body == b"who are you?"


async def test_a_client_that_answers_pings_stays_connected() -> None:
    app = App()
    async with server(app, ping_interval_s=PING_INTERVAL_S) as http:
        stream, ws = await sans_io_client(http)
        pings = 0
        async with stream:
            with anyio.fail_after(TIMEOUT_S):
                while pings < 3:  # three rounds of ping, pong and deadline
                    for frame in await read_frames(stream, ws):
                        pings += frame.opcode is Opcode.PING
                    await stream.send(b"".join(ws.data_to_send()))  # the pongs
            assert ws.state is OPEN
            assert not app.ended.is_set()


async def test_a_client_that_stops_answering_pings_is_closed_with_1011() -> None:
    app = App()
    async with server(app, ping_interval_s=PING_INTERVAL_S) as http:
        stream, ws = await sans_io_client(http)
        async with stream:
            with anyio.fail_after(TIMEOUT_S):
                while ws.state is not CLOSED:
                    await read_frames(stream, ws)  # and never send the pongs
        await app_ended(app)
    assert ws.close_rcvd is not None and ws.close_rcvd.code == 1011
    assert app.disconnect is not None and app.disconnect["code"] == 1011


class CountingTransport:
    """A transport that counts its writes (the rest goes to the real one)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CountingProtocol(WebSocketProtocol):
    connections: list[CountingProtocol] = []  # noqa: RUF012 (one test's record)

    def connection_made(self, transport: Any) -> None:
        self.counted = CountingTransport(transport)
        super().connection_made(cast(asyncio.BaseTransport, self.counted))
        CountingProtocol.connections.append(self)


async def test_send_frames_writes_each_batch_at_once_in_order_with_the_single_sends() -> None:
    app = App()
    http = HttpService(
        app,
        host="127.0.0.1",
        port=0,
        ping_interval_s=20,
        max_frame_bytes=MAX_FRAME_BYTES,
        ws=CountingProtocol,
    )
    async with serving([http]), client(http, "/frames", max_size=None) as ws:
        with anyio.fail_after(TIMEOUT_S):
            got = [await ws.recv() for _ in range(2 + sum(map(len, BATCHES)))]
        (protocol,) = CountingProtocol.connections
        writes = protocol.counted.writes
    assert got == ["first", *BATCHES[0], *BATCHES[1], "last"]
    assert SEND_FRAMES in app.extensions
    assert writes == 1 + 1 + len(BATCHES) + 1  # the 101, "first", one per batch, "last"


def test_frame_headers_are_what_websockets_writes() -> None:
    for length in (0, 1, 125, 126, 65_535, 65_536, 1 << 20):
        data = b"x" * length
        serialized = Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
        assert frame_header(length) + data == serialized, length


async def test_send_frames_after_the_clients_close_is_a_disconnect() -> None:
    app = App()
    async with server(app) as http:
        async with client(http, "/late"):
            with anyio.fail_after(TIMEOUT_S):
                await app.accepted.wait()
        await app_ended(app)  # the echo loop saw the close, then sent a batch
    assert app.disconnect is not None and app.disconnect["code"] == 1000
    assert isinstance(app.send_error, OSError)  # uvicorn's ClientDisconnected, as for websocket.send


@pytest.mark.parametrize("path", ["/flood", "/flood-frames"])
async def test_sends_wait_for_a_slow_reader_and_fail_once_it_is_gone(path: str) -> None:
    app = App()
    async with server(app) as http, client(http, path, max_queue=1, max_size=None) as ws:
        with anyio.move_on_after(1):
            await app.flooded.wait()
        assert not app.flooded.is_set(), "64 MB buffered for a client that does not read"
        for _ in range(FLOOD_FRAMES):  # reading lets the app's sends through
            with anyio.fail_after(TIMEOUT_S):
                await ws.recv()
        with anyio.fail_after(TIMEOUT_S):
            await app.flooded.wait()

    app = App()
    async with server(app) as http, client(http, path, max_queue=1, max_size=None) as ws:
        with anyio.fail_after(TIMEOUT_S):
            await app.accepted.wait()
        ws.transport.abort()  # a send held back by flow control must not wait forever
        await app_ended(app)
    assert isinstance(app.send_error, OSError)


async def test_the_handshake_request_is_not_kept_for_the_connections_life() -> None:
    app = App()
    async with server(app) as http:
        stream, ws = await sans_io_client(http, marker="kept-or-not")
        async with stream:
            with anyio.fail_after(TIMEOUT_S):
                await app.accepted.wait()
            gc.collect()
            kept = [o for o in gc.get_objects() if isinstance(o, Request) and "X-Marker" in o.headers]
            assert kept == []
            assert ws.state is OPEN


# -- a client without the asyncio layer: it answers pings only when told to ----------------


async def sans_io_client(http: HttpService, marker: str = "") -> tuple[SocketStream, ClientProtocol]:
    ws = ClientProtocol(parse_uri(f"ws://127.0.0.1:{http.port}/echo"))
    request = ws.connect()
    if marker:
        request.headers["X-Marker"] = marker
    ws.send_request(request)
    del request
    stream = await anyio.connect_tcp("127.0.0.1", http.port)
    await stream.send(b"".join(ws.data_to_send()))
    with anyio.fail_after(TIMEOUT_S):
        while ws.state is CONNECTING:
            await read_frames(stream, ws)
    assert ws.handshake_exc is None
    return stream, ws


async def read_frames(stream: SocketStream, ws: ClientProtocol) -> list[Frame]:
    try:
        ws.receive_data(await stream.receive())
    except anyio.EndOfStream:
        ws.receive_eof()
    return [event for event in ws.events_received() if isinstance(event, Frame)]


# -- a client that floods frames the app never sees, or never reads --------------------------


async def send_frames(stream: SocketStream, ws: ClientProtocol, frames: list[Frame]) -> None:
    for frame in frames:
        ws.send_frame(frame)
    await stream.send(b"".join(ws.data_to_send()))


async def close_received(
    stream: SocketStream, ws: ClientProtocol, frames: list[Frame] | None = None
) -> tuple[int, str]:
    """The close the server sent; what came before it goes into `frames`."""
    with anyio.fail_after(TIMEOUT_S):
        while ws.close_rcvd is None and ws.state is not CLOSED:
            received = await read_frames(stream, ws)
            if frames is not None:
                frames += received
    assert ws.close_rcvd is not None
    return ws.close_rcvd.code, ws.close_rcvd.reason


@pytest.mark.parametrize(
    "flood",
    [
        [Frame(Opcode.PING, b"x" * 125)] * (FRAME_BURST + 1),  # each would be answered with a pong
        [Frame(Opcode.TEXT, b"a", fin=False), *[Frame(Opcode.CONT, b"", fin=False)] * FRAME_BURST],
    ],
    ids=["pings", "empty-fragments"],
)
async def test_a_flood_of_frames_the_app_never_sees_is_failed_1008(flood: list[Frame]) -> None:
    app = App()
    async with server(app) as http:
        stream, ws = await sans_io_client(http)
        async with stream:
            await send_frames(stream, ws, flood)
            before: list[Frame] = []
            assert await close_received(stream, ws, before) == (1008, "too many frames")
        await app_ended(app)
    # only the frames within the budget are answered (websockets queues a pong per ping as it
    # parses a read: those of the read that broke the budget must not go out with the close)
    assert sum(frame.opcode is Opcode.PONG for frame in before) <= FRAME_BURST
    assert app.disconnect is not None and app.disconnect["code"] == 1008
    assert app.disconnect[SERVER_CLOSED] is True  # the server's doing, not the client's close


async def test_a_message_in_too_many_fragments_is_failed_1009() -> None:
    app = App()
    async with server(app) as http:
        stream, ws = await sans_io_client(http)
        async with stream:
            fragments = [Frame(Opcode.TEXT, b"a", fin=False)]
            fragments += [Frame(Opcode.CONT, b"b", fin=False)] * MAX_FRAGMENTS
            await send_frames(stream, ws, fragments)
            code, _ = await close_received(stream, ws)
        await app_ended(app)
    assert code == 1009
    assert app.disconnect is not None and app.disconnect[SERVER_CLOSED] is True


class TrackedProtocol(WebSocketProtocol):
    """Its one connection, and an event set once that connection is gone."""

    made: TrackedProtocol | None = None
    lost: anyio.Event | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        TrackedProtocol.made = self

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        assert TrackedProtocol.lost is not None
        TrackedProtocol.lost.set()


async def test_a_client_that_reads_nothing_is_not_read_until_it_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """While its socket is full, what a client sends is not read (its pings' pongs would pile
    up unsent); once the server closes, a client still reading nothing is aborted
    CLOSE_TIMEOUT_S later: the server keeps nothing of it."""
    monkeypatch.setattr(wsserver, "CLOSE_TIMEOUT_S", 0.5)
    TrackedProtocol.lost = anyio.Event()
    app = App()
    async with server(app, protocol=TrackedProtocol) as http:
        async with client(http, "/flood", max_queue=1, max_size=None):
            with anyio.fail_after(TIMEOUT_S):
                await app.accepted.wait()
            with anyio.move_on_after(1):
                await app.flooded.wait()  # the app's sends wait: the socket is full
            made = TrackedProtocol.made
            assert made is not None and not app.ended.is_set()
            transport = cast(Any, made)._transport
            assert not transport.is_reading()  # nor is the client read
            http.stop()  # the close frame cannot reach it: the connection is aborted
            with anyio.fail_after(TIMEOUT_S):
                await TrackedProtocol.lost.wait()
            await app_ended(app)
