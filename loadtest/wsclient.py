"""A client WebSocket for the load generator's observers: an asyncio.Protocol driving
websockets' sans-I/O ClientProtocol, with each message handed over from the read callback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

import anyio
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import BINARY, CONT, TEXT, CloseCode
from websockets.frames import Frame as WireFrame
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import OPEN, Event
from websockets.uri import parse_uri

OPEN_TIMEOUT_S: Final = 30.0  # TCP connect and opening handshake
CLOSE_TIMEOUT_S: Final = 1.0  # for the server to end the TCP connection once close frames crossed
MAX_MESSAGE: Final = 2**20
MAX_HEAD: Final = 2**16  # of the handshake response
_FIN_TEXT: Final = 0x81  # first byte of a whole text message in one frame (no RSV bits)


class Socket(asyncio.Protocol):
    """A client WebSocket: websockets' sans-I/O ClientProtocol under an asyncio.Protocol, each
    message handed to `on_message` from the read callback, all replies of one read sent in one
    write. The protocol does the handshake, the pings' pongs, the closing handshake and every
    error; a run of whole, unfragmented text frames (the gateway's change frames) is split here
    without it: the protocol is given whole frames only, so it always sits at a frame boundary.

    Reading goes through three modes: `_HEAD` (until the handshake response's head is complete:
    only that is fed to the protocol), `_FRAMES` (while the protocol is open: frames split here,
    any other kind fed to the protocol one whole frame at a time), `_RAW` (everything to the
    protocol: after a failed handshake, once closing, or on a frame the protocol must reject).
    Only the protocol's own calls change its state, and each is followed by a check of the mode;
    its output is flushed after each of them, or at the end of the read."""

    _HEAD, _FRAMES, _RAW = 0, 1, 2

    def __init__(self, url: str, hello: str | None, on_message: Callable[[Socket, bytes], None]):
        self.uri = parse_uri(url)
        self.ws = ClientProtocol(self.uri, max_size=MAX_MESSAGE)
        self.hello = hello  # sent as the handshake completes, before any message is handled
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.mode = self._HEAD
        self.pending = b""  # bytes read but not handled yet (an incomplete head or frame)
        self.fragments: list[bytes] = []  # of a fragmented message, from the protocol
        self.reading = False  # in a read callback: replies wait for its one write
        self.unsent = False  # the protocol may have data to send
        self.eof = False
        self.error: Exception | None = None  # raised by on_message: re-raised by serve()
        self.close_timer: asyncio.TimerHandle | None = None
        self.answered = anyio.Event()  # the handshake response came (or the connection ended)
        self.lost = anyio.Event()

    @classmethod
    async def open(cls, url: str, hello: str | None, on_message: Callable[[Socket, bytes], None]) -> Socket:
        """Connect and complete the opening handshake (raising as websockets' `connect` would)."""
        sock = cls(url, hello, on_message)
        uri, loop = sock.uri, asyncio.get_running_loop()
        try:
            with anyio.fail_after(OPEN_TIMEOUT_S):
                await loop.create_connection(
                    lambda: sock, uri.host, uri.port, ssl=True if uri.secure else None
                )
                await sock.answered.wait()
        except BaseException:
            sock.abort()
            raise
        if sock.ws.handshake_exc is not None:
            sock.abort()
            raise sock.ws.handshake_exc
        return sock

    async def serve(self) -> None:
        """Until the connection ends; raises unless it ended with a clean closing handshake."""
        try:
            await self.lost.wait()
        finally:
            self.abort()  # cancelled: nothing stays open
        if self.error is not None:
            raise self.error
        if not isinstance(self.ws.close_exc, ConnectionClosedOK):
            raise self.ws.close_exc

    def send(self, text: str) -> None:
        if self.ws.state is OPEN:  # else the close is on its way and serve() will tell
            self.ws.send_text(text.encode())
            self._sent()

    async def close(self) -> None:
        """The closing handshake (the server ends the TCP connection), or an abort after
        CLOSE_TIMEOUT_S."""
        if self.ws.state is OPEN:
            self.ws.send_close(CloseCode.NORMAL_CLOSURE)
            self.mode = self._RAW
            self._sent()
        await self.lost.wait()

    def abort(self) -> None:
        if self.transport is not None and not self.lost.is_set():
            self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        request = self.ws.connect()
        request.headers["User-Agent"] = USER_AGENT
        self.ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.reading = True
        try:
            if self.mode == self._FRAMES:
                self._frames(self.pending + data if self.pending else data)
            else:
                self._slow(data)
        except Exception as exc:  # from on_message: end the connection, serve() raises it
            self._fail(exc)
        self.reading = False
        if self.unsent:
            self._flush()

    def eof_received(self) -> None:
        self._end()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.answered.set()
        self.lost.set()

    # reading

    def _frames(self, data: bytes) -> None:
        """Split whole frames off `data`: a whole text message goes to on_message, any other
        frame to the protocol; keep an incomplete frame for the next read."""
        at, size = 0, len(data)
        while size - at >= 2:
            second = data[at + 1]  # mask bit, then 7 bits of length (126: 16 bits follow, 127: 64)
            length, head = second, 2
            if second == 126:
                if size - at < 4:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 4]), 4
            elif second == 127:
                if size - at < 10:
                    break
                length, head = int.from_bytes(data[at + 2 : at + 10]), 10
            if second > 127 or length > MAX_MESSAGE:  # masked by the server, or too big:
                self._raw(data[at:])  # the protocol fails the connection
                return
            end = at + head + length
            if end > size:
                break
            if data[at] == _FIN_TEXT and not self.fragments:
                self.on_message(self, data[at + head : end])
            else:
                self._feed(data[at:end])
                if self.mode != self._FRAMES:  # a close frame: the protocol takes the rest
                    self._raw(data[end:])
                    return
            at = end
        self.pending = data[at:]

    def _slow(self, data: bytes) -> None:
        """The handshake response, or the protocol's stream once not open."""
        if self.pending:
            data, self.pending = self.pending + data, b""
        if self.mode == self._HEAD:
            end = data.find(b"\r\n\r\n")
            if end < 0 and len(data) < MAX_HEAD:
                self.pending = data
                return
            head = end + 4 if end >= 0 else len(data)
            self.mode = self._FRAMES  # unless the response fails the handshake: then _feed says _RAW
            self._feed(data[:head])  # a 101 response has no body: frames follow
            data = data[head:]
            if self.mode == self._FRAMES:
                self._frames(data)
                return
        self._raw(data)

    def _raw(self, data: bytes) -> None:
        self.mode = self._RAW
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        self.unsent = True  # a pong, a close, a half-close
        if self.ws.state is not OPEN:
            self.mode = self._RAW
        self._events(self.ws.events_received())

    def _end(self) -> None:
        """End of the stream: what is pending goes to the protocol (an incomplete frame or head
        is its error to report), then EOF."""
        if self.eof:
            return
        self.eof = True
        try:
            if self.pending:
                self.ws.receive_data(self.pending)
                self.pending = b""
            self.ws.receive_eof()
            self._events(self.ws.events_received())
        except Exception as exc:
            self._fail(exc)

    def _events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Response):
                if self.ws.state is OPEN and self.hello is not None:
                    self.send(self.hello)
                self.answered.set()
            elif not isinstance(event, WireFrame):
                continue  # a Request: only servers receive those
            elif event.opcode is TEXT or event.opcode is BINARY:
                if event.fin:
                    self.on_message(self, bytes(event.data))
                else:
                    self.fragments = [bytes(event.data)]
            elif event.opcode is CONT:
                self.fragments.append(bytes(event.data))
                if event.fin:
                    message, self.fragments = b"".join(self.fragments), []
                    self.on_message(self, message)

    # writing

    def _sent(self) -> None:
        if self.reading:
            self.unsent = True
        else:
            self._flush()

    def _flush(self) -> None:
        """Write what the protocol has to send (the request, pongs, replies, close) at once."""
        self.unsent = False
        writes = self.ws.data_to_send()
        if writes and self.transport is not None and not self.transport.is_closing():
            data = b"".join(writes)
            if data:
                self.transport.write(data)
            if writes[-1] == b"":  # the protocol half-closes after the closing handshake
                if self.transport.can_write_eof():
                    self.transport.write_eof()
                else:
                    self.transport.close()
        if self.ws.state is not OPEN and self.close_timer is None and self.ws.close_expected():
            loop = asyncio.get_running_loop()
            self.close_timer = loop.call_later(CLOSE_TIMEOUT_S, self.abort)

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc
        self.abort()
