"""A lean WebSocket protocol for uvicorn (`Config(ws=WebSocketProtocol)`), for memory per connection.

uvicorn 0.54's websockets-sansio protocol held ~20 KB of the gateway's 27.7 KB per idle connection
(the handshake request and its headers twice, an asyncio.Queue's three deques, Events, a timer per
ping and per pong). This one speaks the same ASGI and keeps what an idle connection needs: with it
the gateway holds ~14 KB per idle connection (`python -m loadtest connections`, 10,000 clients)."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections import deque
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Final, cast
from urllib.parse import unquote

from starlette.types import ASGIApp, Message
from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN, Protocol
from websockets.server import ServerProtocol

log = logging.getLogger("uvicorn.error")  # where uvicorn's protocols log

# An ASGI extension of this server, for the gateway's live push (gateway/session.py), in two
# forms. `send({"type": SEND_FRAMES, "data": FRAMES})` writes FRAMES (text frames encoded by
# `text_frame`, one or several) in one transport write, waiting first while the transport's
# buffer is full, as `websocket.send` does. `scope["extensions"][SEND_FRAMES](FRAMES)`, a plain
# call (the extension's value is this callable, not a dict: one object less per connection),
# writes them at once and returns True, or writes nothing and returns False when that send
# would wait or fail (buffer full, connection closing or gone): a caller outside the app's task
# (the hub's flush) writes without waking it, and leaves the rest to the task.
SEND_FRAMES: Final = "notifier.websocket.send_frames"
CLOSE_TIMEOUT_S: Final = 10.0  # after the app's close frame, for the client's reply (as uvicorn)
# Frames a client may send (control frames and fragments included): a bucket of FRAME_BURST
# refilled at FRAMES_PER_S. Past it the connection is failed 1008: a flood of pings (each
# answered with a pong) or of empty continuation frames costs the gateway CPU and memory that
# the app's own message limit (gateway/session.py) never sees.
FRAME_BURST: Final = 256
FRAMES_PER_S: Final = 64
MAX_FRAGMENTS: Final = 128  # of one message: past it, 1009 (bytes are bounded by ws_max_size)
SERVICE_RESTART: Final = 1012  # the close code every client gets when the server shuts down
# In a `websocket.disconnect` message: True when this server closed the connection for the
# client's fault (a protocol error, a frame flood, invalid UTF-8, a message too big, no pong),
# not the client: gateway/session.py counts and logs those apart.
SERVER_CLOSED: Final = "notifier.server_closed"


class WebSocketProtocol(asyncio.Protocol):
    """One connection: websockets' `ServerProtocol` under asyncio, the app run as one task.

    Idle, it holds the parser, a timer (next ping, pong deadline or close deadline) and flags;
    messages for the app wait in a deque, and futures exist only while someone waits (the app
    for a message, a sender for the transport to drain). The handshake request is dropped once
    the scope is built; the response once sent. Behaviour follows uvicorn's websockets-sansio:
    a close before accept is HTTP 403, `websocket.http.response.*` sends a denial response,
    `shutdown()` closes with 1012, a message over `ws_max_size` closes with 1009."""

    _transport: asyncio.Transport  # from connection_made

    __slots__ = (
        "_app_state",
        "_budget",
        "_budget_at",
        "_close_sent",
        "_config",
        "_conn",
        "_denial",
        "_disconnect",
        "_drain",
        "_failed",
        "_fragments",
        "_handshake_done",
        "_inbox",
        "_loop",
        "_lost",
        "_ping",
        "_read_paused",
        "_response",
        "_scope",
        "_server_state",
        "_text",
        "_timer",
        "_transport",
        "_waiter",
    )

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_running_loop()
        # no permessage-deflate (config.ws_per_message_deflate): zlib state is tens of KB a connection
        self._conn = ServerProtocol(max_size=config.ws_max_size, logger=log)
        self._scope: dict[str, Any] | None = None  # until the app accepts or refuses (for its log line)
        self._response: Response | None = None  # the 101 prepared by the handshake, until accepted
        self._denial: tuple[int, list[tuple[str, str]], bytes] | None = None  # websocket.http.response
        self._handshake_done = False  # accepted, refused, or the connection is gone
        self._close_sent = False
        self._failed = False  # closed for the client's fault: the app's sends are as if it left
        self._lost = False
        self._read_paused = False
        self._inbox: deque[Message] | None = None  # messages for the app, only while some wait
        self._disconnect: Message | None = None  # the app's last message, once known
        self._waiter: asyncio.Future[None] | None = None  # the app waiting in receive()
        self._drain: asyncio.Future[None] | None = None  # while the transport's buffer is full
        self._fragments: list[bytes] | None = None  # of a fragmented message
        self._text = False
        self._timer: asyncio.TimerHandle | None = None
        self._ping: bytes | None = None  # payload of the keepalive ping awaiting its pong
        self._budget = float(FRAME_BURST)  # frames the client may still send now
        self._budget_at = self._loop.time()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server_state.connections.add(cast(Any, self))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._set_disconnect(1005 if self._handshake_done else 1006)
        self._server_state.connections.discard(cast(Any, self))
        self._handshake_done = self._lost = True
        self._fragments = None
        # asyncio never resumes writing on a transport lost while paused: release the senders
        self.resume_writing()

    def eof_received(self) -> None:
        return None  # the transport closes; connection_lost tells the app

    def pause_writing(self) -> None:
        """The transport's buffer is full: senders wait, and the client is read no more (what
        it sends may call for answers, a pong for each ping, that would pile up unsent)."""
        if self._drain is None:
            self._drain = self._loop.create_future()
            if not self._read_paused and not self._transport.is_closing():
                self._transport.pause_reading()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)
        if drain is not None and not self._read_paused and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data)
        if self._conn.parser_exc is not None:  # e.g. a message over ws_max_size: closed 1009
            close = self._conn.close_sent
            self._set_disconnect(close.code if close else 1006, close.reason if close else "", server=True)
            self._close_sent = self._failed = True
        events = self._conn.events_received()
        if self._handshake_done and not self._close_sent and not self._within_budget(events):
            return
        for event in events:
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._flush()

    def _within_budget(self, events: list[Request | Response | Frame]) -> bool:
        """Take this read's frames from the client's budget; past it, fail the connection 1008
        (the frames are dropped: neither answered nor given to the app)."""
        frames = sum(1 for event in events if isinstance(event, Frame))
        if not frames:
            return True
        now = self._loop.time()
        self._budget = min(FRAME_BURST, self._budget + (now - self._budget_at) * FRAMES_PER_S) - frames
        self._budget_at = now
        if self._budget >= 0:
            return True
        # websockets queued a pong for each ping of this read as it parsed them: not sent
        self._conn.data_to_send()
        self._fail(1008, "too many frames")
        return False

    def _fail(self, code: int, reason: str) -> None:
        """Close the connection for the client's fault: a close frame, then the TCP connection."""
        log.info("ws client failed the protocol (%s): closed %d", reason, code)
        self._conn.fail(code, reason)
        self._set_disconnect(code, reason, server=True)
        self._close_sent = self._failed = True
        self._flush()

    def shutdown(self) -> None:
        """Called by uvicorn on each connection when the server stops."""
        self._stop_timer()
        if self._close_sent:
            self._shut()
            return
        if not self._handshake_done:
            self._send_500()
        elif self._conn.state is OPEN:
            self._set_disconnect(SERVICE_RESTART)
            self._conn.send_close(SERVICE_RESTART)
            self._flush()
        self._shut()

    # -- from the client -----------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        response = self._conn.accept(request)
        if response.status_code != 101:  # not a valid WebSocket handshake: answered and closed
            self._handshake_done = self._close_sent = True
            self._conn.send_response(response)
            return
        self._response = response
        self._scope = scope = self._build_scope(request)
        self._put({"type": "websocket.connect"})
        # the server's task set holds it (uvicorn's shutdown waits for these, like its own protocols')
        task = self._loop.create_task(self._run_asgi(scope))
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    def _build_scope(self, request: Request) -> dict[str, Any]:
        root_path = self._config.root_path
        raw_path, _, query_string = request.path.partition("?")
        subprotocols = [
            token.strip()
            for header in request.headers.get_all("Sec-WebSocket-Protocol")
            for token in header.split(",")
        ]
        # websockets >= 17 decodes header values as latin-1, older ones as ascii+surrogateescape
        headers = [
            (key.lower().encode("ascii"), value.encode("latin-1", "surrogateescape"))
            for key, value in request.headers.raw_items()
        ]
        return {
            "type": "websocket",
            "asgi": {"version": self._config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(self._transport) else "ws",
            "server": get_local_addr(self._transport),
            "client": get_remote_addr(self._transport),
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
            "query_string": query_string.encode("ascii"),
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._app_state.copy(),
            "extensions": {"websocket.http.response": {}, SEND_FRAMES: self.write_frames},
        }

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._text = opcode is Opcode.TEXT
            if frame.fin:
                self._deliver(bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT and self._fragments is not None:
            if len(self._fragments) >= MAX_FRAGMENTS:
                self._fragments = None
                self._fail(1009, f"a message in over {MAX_FRAGMENTS} fragments")
                return
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data, self._fragments = b"".join(self._fragments), None
                self._deliver(data)
        elif opcode is Opcode.PONG:
            if self._ping is not None and frame.data == self._ping:
                self._ping = None
        elif opcode is Opcode.CLOSE:
            if self._close_sent:
                self._stop_timer()  # our close was answered; the flush closes the transport
            else:
                close = self._conn.close_rcvd
                assert close is not None
                self._set_disconnect(close.code, close.reason)
        # a PING's pong is queued by the protocol and goes out with this read's flush

    def _deliver(self, data: bytes) -> None:
        if self._close_sent:
            return  # the app is past websocket.close: drop it, keep reading for the client's close
        if not self._text:
            self._put({"type": "websocket.receive", "bytes": data})
        else:
            try:
                self._put({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:  # the client's fault, one line (a traceback each let any
                self._fail(1007, "text not UTF-8")  # client fill the error log)
                return
        if not self._read_paused:  # as uvicorn: read no more until the app has taken it
            self._read_paused = True
            self._transport.pause_reading()

    # -- to the app ----------------------------------------------------------------------

    def _put(self, message: Message) -> None:
        if self._inbox is None:
            self._inbox = deque()
        self._inbox.append(message)
        self._wake()

    def _set_disconnect(self, code: int, reason: str = "", *, server: bool = False) -> None:
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            if server:
                self._disconnect[SERVER_CLOSED] = True
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self) -> Message:
        while not self._inbox and self._disconnect is None:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if not self._inbox:
            assert self._disconnect is not None
            return self._disconnect
        message = self._inbox.popleft()
        if not self._inbox:
            self._inbox = None
            self._resume_reading()
        return message

    async def _run_asgi(self, scope: dict[str, Any]) -> None:
        app = cast(ASGIApp, self._config.loaded_app)
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception:
            log.exception("Exception in ASGI application\n")
            self._send_500()
        else:
            if not self._handshake_done:
                log.error("ASGI callable returned without completing handshake.")
                self._send_500()
        finally:
            if not (self._close_sent and self._timer is not None):  # else awaiting the client's close
                self._shut()

    # -- from the app --------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self._drain is not None:
            await asyncio.shield(self._drain)  # shared by every sender: one cancelled must not end it
        if self._lost or self._failed:
            raise ClientDisconnected()
        kind = message["type"]
        if self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'.")
            self._denial_body(message)
        elif not self._handshake_done:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._refuse()
            elif kind == "websocket.http.response.start":
                self._denial_start(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got '{kind}'."
                )
        elif self._close_sent:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close'.")
        else:
            try:
                if kind == SEND_FRAMES:
                    self._send_frames(message["data"])
                elif kind == "websocket.send":
                    self._send_data(message)
                elif kind == "websocket.close":
                    self._close(message.get("code", 1000), message.get("reason") or "")
                else:
                    raise RuntimeError(
                        f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'."
                    )
            except InvalidState:  # the closing handshake has begun (the client's close, or shutdown)
                raise ClientDisconnected() from None

    def _send_data(self, message: Message) -> None:
        data: bytes | None = message.get("bytes")
        if data is not None:
            self._conn.send_binary(data)
        else:
            text: str | None = message.get("text")
            if text is None:
                return
            self._conn.send_text(text.encode())
        self._flush()

    def _send_frames(self, data: bytes) -> None:
        if self._conn.state is not OPEN:
            raise InvalidState("the closing handshake has begun")
        self._flush()  # nothing is pending (every send flushes), but order must hold if it were
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_frames(self, data: bytes) -> bool:
        """SEND_FRAMES without waiting: `data` written now (True), or nothing when the send
        would wait for the buffer to drain or fail (False)."""
        if self._drain is not None or self._lost or self._close_sent or self._conn.state is not OPEN:
            return False
        self._send_frames(data)
        return True

    def _accept(self, message: Message) -> None:
        self._log_handshake("[accepted]")
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in [*self._server_state.default_headers, *message.get("headers", [])]
        ]
        if message.get("subprotocol"):
            headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
        response, self._response, self._scope = self._response, None, None
        assert response is not None
        del response.headers["Date"]  # the server's default headers carry uvicorn's own
        response.headers.update(headers)
        if self._transport.is_closing():
            raise ClientDisconnected()
        self._handshake_done = True
        self._conn.send_response(response)
        self._flush()
        self._start_keepalive()
        if not self._conn.reader.buffer:
            # ServerProtocol.parse() keeps the handshake request (and its headers) in its frame
            # for the connection's life, around Protocol.parse(), the frame parser: run that
            # alone from here. A client sends nothing before our 101, so we are between frames.
            self._conn.parser = Protocol.parse(self._conn)
            next(self._conn.parser)

    def _refuse(self) -> None:
        """A close before accept: HTTP 403."""
        self._set_disconnect(1006)
        self._log_handshake("403")
        self._response = self._scope = None
        self._conn.send_response(self._conn.reject(HTTPStatus.FORBIDDEN, ""))
        self._handshake_done = self._close_sent = True
        self._flush()

    def _denial_start(self, message: Message) -> None:
        status: int = message["status"]
        if not 100 <= status < 600:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        self._log_handshake(str(status))
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in message.get("headers", [])
        ]
        self._denial = (status, headers, b"")
        self._response = self._scope = None

    def _denial_body(self, message: Message) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        body += message.get("body", b"")
        if message.get("more_body", False):
            self._denial = (status, headers, body)
            return
        self._denial = None
        response_headers = Headers(headers)
        response_headers.setdefault("Date", formatdate(usegmt=True))
        response_headers.setdefault("Connection", "close")
        response_headers.setdefault("Content-Length", str(len(body)))
        response_headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self._set_disconnect(1006)
        self._conn.send_response(Response(status, _phrase(status), response_headers, body))
        self._handshake_done = self._close_sent = True
        self._flush()

    def _close(self, code: int, reason: str) -> None:
        if self._transport.is_closing():
            return
        self._set_disconnect(code, reason)
        self._conn.send_close(code, reason)
        self._close_sent = True
        self._flush()
        self._resume_reading()  # read on, for the client's closing frame
        self._stop_timer()
        self._timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._transport.abort)

    def _send_500(self) -> None:
        if self._denial is not None or self._handshake_done or self._close_sent:
            return
        self._conn.send_response(self._conn.reject(500, "Internal Server Error"))
        self._close_sent = True
        self._flush()

    def _log_handshake(self, outcome: str) -> None:
        if self._scope is not None:
            scope = cast(Any, self._scope)
            log.info(
                '%s - "WebSocket %s" %s', get_client_addr(scope), get_path_with_query_string(scope), outcome
            )

    # -- transport -----------------------------------------------------------------------

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if not data or self._transport.is_closing():
            return
        self._transport.write(b"".join(data))
        if data[-1] == b"":  # websockets' end of stream: a server closes the TCP connection
            self._shut()

    def _shut(self) -> None:
        """Close the transport, and abort it if what it holds is not written CLOSE_TIMEOUT_S
        later: a client that reads nothing (a zero TCP window) would hold the socket and its
        buffer for ever."""
        if self._lost:
            return
        if not self._transport.is_closing():
            self._transport.close()
        self._stop_timer()
        self._timer = self._loop.call_later(CLOSE_TIMEOUT_S, self._transport.abort)

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if self._drain is None and not self._transport.is_closing():
                self._transport.resume_reading()

    # -- keepalive: one timer, armed for the next ping, then for its pong ------------------

    def _start_keepalive(self) -> None:
        interval = self._config.ws_ping_interval
        if interval is not None and interval > 0:
            self._timer = self._loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._timer = None
        if self._close_sent or self._transport.is_closing():
            return
        self._ping = random.randbytes(4)  # tells this ping's pong from stale or unsolicited ones
        self._conn.send_ping(self._ping)
        self._flush()
        timeout, interval = self._config.ws_ping_timeout, self._config.ws_ping_interval
        assert interval is not None
        if timeout is None:
            self._timer = self._loop.call_later(interval, self._send_ping)
        else:
            self._timer = self._loop.call_later(timeout, self._pong_deadline)

    def _pong_deadline(self) -> None:
        """No pong: close with 1011. Else the next ping goes `ws_ping_interval` after the last one
        (at once if the timeout is the longer; uvicorn waits for the pong, then the interval)."""
        self._timer = None
        if self._close_sent or self._transport.is_closing():
            return
        if self._ping is not None:
            self._fail(1011, "keepalive ping timeout")
            return
        interval, timeout = self._config.ws_ping_interval, self._config.ws_ping_timeout
        assert interval is not None and timeout is not None
        if interval > timeout:
            self._timer = self._loop.call_later(interval - timeout, self._send_ping)
        else:
            self._send_ping()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ping = None


def text_frame(data: bytes) -> bytes:
    """A server's text frame of the UTF-8 `data`: unmasked, and no extension is negotiated, so
    a 2-10 byte header and the payload (RFC 6455 §5.2)."""
    return frame_header(len(data)) + data


def frame_header(length: int) -> bytes:
    """RFC 6455 §5.2 header of an unmasked, final text frame with a payload of `length` bytes."""
    if length < 126:
        return _SHORT.pack(0x81, length)
    if length < 65_536:
        return _MEDIUM.pack(0x81, 126, length)
    return _LONG.pack(0x81, 127, length)


_SHORT: Final = struct.Struct("!BB")
_MEDIUM: Final = struct.Struct("!BBH")
_LONG: Final = struct.Struct("!BBQ")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
