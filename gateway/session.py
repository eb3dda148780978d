"""One client connection: authenticate → resume from its cursor → live, with a bounded queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import anyio
import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from feeds import changelog
from feeds.changelog import Refetch
from notifier.runtime import tokens
from notifier.runtime.logs import ACCESS_LOGGER
from notifier.runtime.settings import AuthSettings, GatewaySettings
from schemas import decoding, protocol
from schemas.cursor import NO_EPOCH, START, Cursor
from schemas.errors import Reason, Rejected

from .hub import Hub, Push
from .outbox import Outbox
from .wsserver import SEND_FRAMES, SERVER_CLOSED, SERVICE_RESTART

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

_RESYNC = None  # queue marker: re-read the change log from our cursor


class Closed(Exception):
    """The session ends with a close code and reason (sent to the client)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.rejected = Rejected(reason, detail)


class Session:
    """Nothing is sent before authentication. Live changes are queued from the moment the
    user's subscription is confirmed; the change log is replayed after the client's cursor;
    queued changes at or before the last replayed entry are skipped, so the seam has no gap
    and no duplicate."""

    __slots__ = (  # a gateway holds one per connection
        "_auth",
        "_cursor",
        "_expired",
        "_hub",
        "_live_scope",
        "_outbox",
        "_overflowed",
        "_redis",
        "_send_frames",
        "_settings",
        "_write_frames",
        "_ws",
        "expires_at",
        "user",
    )

    def __init__(
        self,
        ws: WebSocket,
        redis: Redis,
        hub: Hub,
        settings: GatewaySettings,
        auth: AuthSettings,
        send_frames: Send | None = None,
        write_frames: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._ws = ws
        # the server's ASGI send and its write-now call where it offers SEND_FRAMES
        # (gateway/wsserver.py); else live frames go one by one through `ws`, by the writer task
        self._send_frames = send_frames
        self._write_frames = write_frames
        self._redis = redis
        self._hub = hub
        self._settings = settings
        self._auth = auth
        self._outbox: Outbox[Push | None] = Outbox(settings.send_queue_frames)
        self._overflowed = False
        self._expired = False
        self._live_scope: anyio.CancelScope | None = None
        self.user = ""
        self.expires_at = 0.0  # unix seconds, from the token
        self._cursor = START

    # -- Listener (called by the hub, never blocks) -------------------------------------

    @property
    def cursor(self) -> Cursor | None:
        return self._cursor if self._outbox.waiting else None  # the writer idle, all written

    def push_nowait(self, change: Push) -> None:
        self._enqueue(change)

    def resync(self) -> None:
        self._enqueue(_RESYNC)

    def _enqueue(self, item: Push | None) -> None:
        if not self._outbox.put_nowait(item):
            # a client that does not keep up is cut off (it resumes from its cursor), never
            # buffered without bound; the writer may be stuck in a send to it, so cancel that too
            self._overflowed = True
            self._outbox.close()
            if self._live_scope is not None:
                self._live_scope.cancel()
        elif len(self._outbox) == 1:  # the first since the queue was emptied
            self._hub.flush_soon(self)

    def flush(self) -> None:
        """Called by the hub once the read that queued our first change is done. While the
        writer task waits for work, the changes that go out as they are are written from here,
        in one write, with no task woken: it is the writer's own step (`_ready_run`, then the
        write) minus the wait, and only when the transport takes the write at once. What needs
        more (a resync or a change that does not follow: the change log; a full buffer: its
        drain; an ASGI server without SEND_FRAMES) is left at the head of the queue for the
        writer, which is woken. Order holds: either writes only while the other is idle."""
        outbox = self._outbox
        if not outbox.waiting:  # the writer is at work (or before `ready`): it takes the queue itself
            return
        if self._write_frames is not None:
            batch = outbox.take_nowait()
            pushes, stop, cursor = self._ready_run(batch)
            if not pushes or self._write_frames(_frames(pushes)):
                self._cursor = cursor
                self._written(pushes)
                del batch[:stop]
            outbox.restore(batch)
        if len(outbox):
            outbox.wake()

    # -- lifecycle -----------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            await self._serve()
        finally:
            self._outbox.close()  # however the session ends

    async def _serve(self) -> None:
        await self._ws.accept()
        try:
            cursor = await self._authenticate()
            if self._hub.sessions_of(self.user) >= self._settings.max_sessions_per_user:
                raise Closed(Reason.OVERLOADED, "too many connections for this user")
            await self._hub.register(self.user, self)
            try:
                await self._live(cursor)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._hub.unregister(self.user, self)
        except* Closed as closed:
            first = closed.exceptions[0]
            assert isinstance(first, Closed)
            await self._close(first.rejected)
        except* (WebSocketDisconnect, OSError) as gone:  # the client went away, or the server stops
            first_gone = gone.exceptions[0]
            if isinstance(first_gone, ServerClosed):
                self._server_closed(first_gone)
            else:
                self._client_closed(first_gone.code if isinstance(first_gone, WebSocketDisconnect) else 1006)
        except* (RedisConnectionError, RedisTimeoutError):
            # Redis is down or frozen: a close the client can act on, not a traceback per socket
            self._hub.metrics.redis_errors("gateway session").inc()
            await self._close(Rejected(Reason.UNAVAILABLE, "storage unavailable; reconnect with your cursor"))
        except* RedisError as refused:
            # an error reply while Redis restarts (a script cache emptied twice in a row, LOADING,
            # a replica just promoted): the same close, and one line saying what Redis answered
            reply = refused.exceptions[0]
            log.warning("session closed on a redis error user=%s: %r", self.user or "-", reply)
            self._hub.metrics.redis_errors("gateway session").inc()
            await self._close(Rejected(Reason.UNAVAILABLE, "storage unavailable; reconnect with your cursor"))

    def _server_closed(self, closed: ServerClosed) -> None:
        """The connection failed for the client's fault, found by the server (ServerClosed)."""
        self._hub.metrics.closes_by_transport(closed.code).inc()
        extra = {"user": self.user or "-", "code": closed.code, "reason": closed.reason or "protocol"}
        access_log.info("ws close", extra=extra)

    def _client_closed(self, code: int) -> None:
        if code == SERVICE_RESTART:  # not the client: the server closed it as it shuts down
            self._hub.metrics.closes_at_shutdown(code).inc()
            extra = {"user": self.user or "-", "code": code, "reason": Reason.SHUTTING_DOWN.value}
            access_log.info("ws close", extra=extra)
            return
        self._hub.metrics.closes_client.inc()
        access_log.info("ws closed by client", extra={"user": self.user or "-", "code": code})

    async def _close(self, rejected: Rejected) -> None:
        self._hub.metrics.closes_by_reason[rejected.reason].inc()
        extra = {"user": self.user or "-", "code": rejected.ws_close_code, "reason": rejected.reason.value}
        access_log.info("ws close", extra=extra)
        # each step bounded on its own: a client that stopped reading blocks the error frame,
        # and the close code must still be tried
        with anyio.move_on_after(1, shield=True):
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self._ws.send_text(protocol.error(rejected.reason, rejected.detail))
        with anyio.move_on_after(1, shield=True):
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self._ws.close(rejected.ws_close_code, rejected.reason.value)

    async def _authenticate(self) -> Cursor | None:
        with anyio.move_on_after(self._settings.auth_deadline_s):
            frame = await self._receive()
            if not isinstance(frame, protocol.Auth):
                raise Closed(Reason.UNAUTHORIZED, "the first frame must be auth")
            self._check_token(frame.token)
            return _cursor_of(frame)
        raise Closed(Reason.AUTH_TIMEOUT, f"no auth frame within {self._settings.auth_deadline_s}s")

    def _check_token(self, token: str) -> None:
        try:
            claims = tokens.verify(token, self._auth)
        except Rejected as exc:
            raise Closed(exc.reason, exc.detail) from None
        if self.user and claims.user != self.user:
            raise Closed(Reason.FORBIDDEN, "a refreshed token must be for the same user")
        self.user = claims.user
        self.expires_at = claims.expires_at
        self._hub.expire_by(self.expires_at)  # its sweep calls expire() past it (a refresh moves it)

    def expire(self) -> None:
        self._expired = True
        if self._live_scope is not None:
            self._live_scope.cancel()

    async def _receive(self) -> protocol.ClientFrame:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1000)
            if message.get(SERVER_CLOSED):
                raise ServerClosed(code, message.get("reason"))
            raise WebSocketDisconnect(code)
        raw = message.get("text") or message.get("bytes") or b""
        try:
            return protocol.decode_client(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Closed(Reason.MALFORMED, f"bad frame: {decoding.refusal(exc, body=raw).detail}") from None

    async def _live(self, cursor: Cursor | None) -> None:
        replayed = 0
        if cursor is None:
            self._cursor = await changelog.tail(self._redis, self.user)
        else:
            self._cursor = cursor
            self._hub.metrics.resumes.inc()
            replayed = await self._catch_up()
        await self._ws.send_text(protocol.ready(self.user, str(self._cursor), replayed))
        self._hub.metrics.frames_control.inc()
        access_log.info("ws open", extra={"user": self.user, "resumed": cursor is not None})
        # the reader is a bare asyncio task under the writer's cancel scope, not an anyio task
        # group's: start_soon's handle, scope and event cost ~3 KB per idle connection. Either
        # side's end cancels the other; the reader's failure is raised here once both are done
        with anyio.CancelScope() as scope:
            self._live_scope = scope
            if self._expired:  # during the catch-up
                scope.cancel()
            reader = asyncio.get_running_loop().create_task(self._read_client(scope))
            try:
                await self._write()
            finally:
                reader.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait((reader,))
                failed = None if reader.cancelled() else reader.exception()
        if failed is not None:
            raise failed
        if self._expired:
            raise Closed(Reason.TOKEN_EXPIRED, "token expired; reconnect with a fresh token")
        if self._overflowed:
            raise Closed(Reason.SLOW_CONSUMER, "send queue full; reconnect with your cursor")

    async def _catch_up(self) -> int:
        """Send every logged change after our cursor; a lost position means refetch."""
        sent = 0
        while True:
            result = await changelog.read_after(
                self._redis, self.user, self._cursor, self._settings.replay_batch
            )
            if isinstance(result, Refetch):
                self._cursor = result.tail
                await self._ws.send_text(protocol.refetch(Reason.CURSOR_EXPIRED, str(result.tail)))
                self._hub.metrics.refetches.inc()
                self._hub.metrics.frames_control.inc()
                return sent
            for change in result.changes:
                frame = protocol.feed if change.feed else protocol.change
                await self._ws.send_text(frame(str(change.cursor), change.payload.decode()))
                self._cursor = change.cursor
            sent += len(result.changes)
            self._hub.metrics.frames_replay.inc(len(result.changes))
            if len(result.changes) < self._settings.replay_batch:
                return sent

    async def _write(self) -> None:
        """The writer task: what `flush` left, after waiting for the transport or catching up."""
        while batch := await self._outbox.take():
            while batch and not self._overflowed:
                pushes, stop, self._cursor = self._ready_run(batch)
                await self._send_live(pushes)  # what was queued first goes first
                if stop < len(batch):  # a resync, or a change that does not follow
                    await self._catch_up()  # the log says what we missed, or refetch
                    stop += 1
                del batch[:stop]

    def _ready_run(self, batch: list[Push | None]) -> tuple[list[Push], int, Cursor]:
        """The leading changes of `batch` to send as they are (those the replay sent are
        skipped), up to the first that needs the change log: a resync, or a change that does
        not follow our cursor. Returns them, that one's index (else len(batch)) and the cursor
        after them."""
        cursor = self._cursor
        pushes: list[Push] = []
        for i, item in enumerate(batch):
            if item is _RESYNC or not _follows(cursor, item.cursor):
                return pushes, i, cursor
            if not _replayed(cursor, item.cursor):
                pushes.append(item)
                cursor = item.cursor
        return pushes, len(batch), cursor

    async def _send_live(self, pushes: list[Push]) -> None:
        """Write `pushes`' frames (one transport write where the server offers SEND_FRAMES,
        waiting for its buffer to drain), then count them."""
        if not pushes:
            return
        if self._send_frames is not None:
            await self._send_frames({"type": SEND_FRAMES, "data": _frames(pushes)})
        else:
            for push in pushes:
                await self._ws.send_text(push.text)
        self._written(pushes)

    def _written(self, pushes: list[Push]) -> None:
        """Count the live frames just written, observe their push latency, trace them."""
        if not pushes:
            return
        metrics, now = self._hub.metrics, time.time()
        metrics.frames_live.inc(len(pushes))
        for push in pushes:
            if accepted_ms := push.accepted_ms:
                metrics.push_seconds.observe(now - int(accepted_ms) / 1000)
        traced = self._hub.tracing
        if traced is not None:
            attributes = {"notifier.user": self.user}
            for push in pushes:
                if push.traceparent:
                    traced.span("gateway.push", push.traceparent, attributes=attributes).end()

    async def _read_client(self, scope: anyio.CancelScope) -> None:
        rate = self._settings.max_client_frames_per_s
        allowance, last = rate * 4, time.monotonic()
        try:
            while True:
                frame = await self._receive()
                now = time.monotonic()
                allowance = min(rate * 4, allowance + (now - last) * rate) - 1
                last = now
                if allowance < 0:
                    raise Closed(Reason.OVERLOADED, "too many frames; slow down")
                if isinstance(frame, protocol.Ping):
                    await self._ws.send_text(protocol.pong())
                else:
                    self._check_token(frame.token)
                    _cursor_of(frame)  # checked like the first one's, not used: the session is live
        except ServerClosed as closed:
            self._server_closed(closed)
        except WebSocketDisconnect as gone:
            self._client_closed(gone.code)
        finally:  # however it ends, the writer stops too (its own end cancelled us already)
            scope.cancel()


class ServerClosed(WebSocketDisconnect):
    """The server closed the connection for the client's fault (wsserver.SERVER_CLOSED): a
    protocol error, a frame flood, a message too big, no pong."""


def _cursor_of(frame: protocol.Auth) -> Cursor | None:
    if frame.cursor is None:
        return None
    try:
        return Cursor.parse(frame.cursor)
    except Rejected as exc:
        raise Closed(exc.reason, exc.detail) from None


def _frames(pushes: list[Push]) -> bytes:
    return pushes[0].frame if len(pushes) == 1 else b"".join(push.frame for push in pushes)


def _follows(ours: Cursor, cursor: Cursor) -> bool:
    """Whether a live change fits our position. Not so: another epoch (the log was recreated),
    or our own number with another check (Redis lost the change we sent and reused its number).
    A lower number is one the replay sent; a loss of several changes shows at our number, or at
    the hub's resync after the reconnect a Redis restart forces."""
    if ours.epoch == NO_EPOCH:
        return True
    if cursor.epoch != ours.epoch:
        return False
    return cursor.number != ours.number or cursor.check == ours.check


def _replayed(ours: Cursor, cursor: Cursor) -> bool:
    """A live change at or before our position: the replay sent it already."""
    return cursor.epoch == ours.epoch and cursor.number <= ours.number
