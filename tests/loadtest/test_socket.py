"""The observers' WebSocket (`loadtest.wsclient.Socket`): messages arrive whole and in order however
the stream is cut, the server's pings are answered, closes and errors end it as websockets'
own client would. Against websockets' sans-I/O server (byte-exact) and its asyncio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from loadtest.wsclient import Socket

pytestmark = pytest.mark.anyio

BIG = "b" * 70_000  # a 64-bit length
MEDIUM = "m" * 300  # a 16-bit length


class _Transport(asyncio.Transport):
    """Keeps what the socket writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def take(self) -> bytes:
        data, self.written = b"".join(self.written), []
        return data

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class _Peer:
    """A Socket wired to websockets' sans-I/O server, through the handshake."""

    def __init__(self, hello: str | None = "hello") -> None:
        self.messages: list[bytes] = []
        self.sock = Socket("ws://127.0.0.1:1/v1/ws", hello, lambda _, m: self.messages.append(m))
        self.transport = _Transport()
        self.server = ServerProtocol()
        self.sock.connection_made(self.transport)
        self.server.receive_data(self.transport.take())
        [request] = self.server.events_received()
        assert isinstance(request, Request) and request.path == "/v1/ws"
        self.server.send_response(self.server.accept(request))

    def stream(self) -> bytes:
        return b"".join(self.server.data_to_send())

    def received_by_server(self) -> list[Frame]:
        self.server.receive_data(self.transport.take())
        return [e for e in self.server.events_received() if isinstance(e, Frame)]


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _server_sends(server: ServerProtocol) -> list[bytes]:
    """Every kind of frame a server may send; returns the messages they carry."""
    server.send_text(b'{"type":"ready"}')
    server.send_text(MEDIUM.encode())
    server.send_ping(b"p1")
    server.send_text(BIG.encode())
    server.send_text(b"frag", fin=False)
    server.send_ping(b"p2")  # a control frame between fragments
    server.send_continuation(b"men", fin=False)
    server.send_continuation(b"ted", fin=True)
    server.send_binary(b"binary")
    server.send_text("é".encode())
    return [b'{"type":"ready"}', MEDIUM.encode(), BIG.encode(), b"fragmented", b"binary", "é".encode()]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 126, 1_000, 1 << 20])
async def test_messages_arrive_whole_and_in_order_however_the_stream_is_cut(size: int) -> None:
    peer = _Peer()
    expected = _server_sends(peer.server)
    for chunk in _cut(peer.stream(), size):
        peer.sock.data_received(chunk)
    assert peer.sock.answered.is_set() and peer.sock.ws.handshake_exc is None
    assert peer.messages == expected
    sent = peer.received_by_server()
    assert [(f.opcode, f.data) for f in sent] == [
        (Opcode.TEXT, b"hello"),  # before any message was handled
        (Opcode.PONG, b"p1"),
        (Opcode.PONG, b"p2"),
    ]


async def test_one_read_gets_one_write() -> None:
    peer = _Peer(hello=None)
    peer.server.send_text(b"x")
    peer.sock.data_received(peer.stream())
    for _ in range(3):
        peer.server.send_ping(b"p")
    peer.sock.data_received(peer.stream())
    assert len(peer.transport.written) == 1 and len(peer.received_by_server()) == 3


async def test_a_close_from_the_server_ends_it_cleanly() -> None:
    peer = _Peer(hello=None)
    peer.server.send_text(b"last")
    peer.server.send_close(1001, "going away")
    peer.sock.data_received(peer.stream() + b"\x81\x07ignored")  # after a close, nothing counts
    [close] = peer.received_by_server()  # the close echoed
    assert close.opcode == Opcode.CLOSE and peer.messages == [b"last"]
    peer.sock.eof_received()
    peer.sock.connection_lost(None)
    assert peer.transport.eof  # the client half-closes after the closing handshake
    await peer.sock.serve()  # no error


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x81\x85abcd" + bytes(a ^ b for a, b in zip(b"hello", b"abcdabcd", strict=False)), "masked"),
        (b"\x81\x7f" + (1 << 40).to_bytes(8, "big"), "too big"),
        (b"\xc1\x01x", "reserved bit"),
        (b"\x01\x03fra\x81\x01x", "a message inside a fragmented one"),
    ],
)
async def test_a_frame_the_protocol_rejects_fails_the_connection(frame: bytes, reason: str) -> None:
    peer = _Peer(hello=None)
    peer.sock.data_received(peer.stream() + frame)
    assert peer.messages == [], reason
    [close] = peer.received_by_server()
    assert close.opcode == Opcode.CLOSE
    peer.sock.connection_lost(None)
    with pytest.raises(ConnectionClosedError):
        await peer.sock.serve()


async def test_an_error_in_the_handler_ends_the_connection_and_is_raised() -> None:
    def boom(_: Socket, message: bytes) -> None:
        raise ValueError(message)

    peer = _Peer(hello=None)
    peer.sock.on_message = boom
    peer.server.send_text(b"bad")
    peer.sock.data_received(peer.stream())
    assert peer.transport.closed
    peer.sock.connection_lost(None)
    with pytest.raises(ValueError, match="bad"):
        await peer.sock.serve()


@asynccontextmanager
async def _server(handler: Callable[[ServerConnection], Any], **options: Any) -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, **options) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/ws"


async def test_pings_are_answered_while_the_socket_is_idle() -> None:
    async def handler(ws: ServerConnection) -> None:
        assert await ws.recv() == "hello"
        await anyio.sleep(1.0)  # ~20 pings: one unanswered, the server would close by 0.55 s
        await ws.send("still here")
        await ws.close()

    messages: list[bytes] = []
    async with _server(handler, ping_interval=0.05, ping_timeout=0.5) as url:
        sock = await Socket.open(url, "hello", lambda _, m: messages.append(m))
        await sock.serve()
    assert messages == [b"still here"]


async def test_a_close_code_other_than_normal_is_an_error() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(4401, "unauthorized")

    async with _server(handler) as url:
        sock = await Socket.open(url, None, lambda _, m: None)
        with pytest.raises(ConnectionClosedError):
            await sock.serve()


async def test_the_client_closes_with_a_closing_handshake() -> None:
    closed: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closed.append(ws.close_code)

    async with _server(handler) as url:
        sock = await Socket.open(url, None, lambda _, m: None)
        with anyio.fail_after(5):
            await sock.close()
        await sock.serve()  # ended cleanly
    assert closed == [1000]


async def test_a_refused_handshake_raises_as_websockets_connect_does() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Any:
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "later\n")

    async with _server(lambda ws: None, process_request=refuse) as url:
        with pytest.raises(InvalidStatus):
            await Socket.open(url, None, lambda _, m: None)
