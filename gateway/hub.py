"""Hub: the process's one pub/sub connection, routing each user's changes to their sessions."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, Final, Protocol

import anyio
from anyio.abc import TaskStatus
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds import changelog
from feeds.cluster import REDIS_UNAVAILABLE
from notifier.runtime import metrics, tracing
from notifier.runtime.lifecycle import Backoff
from schemas import keys, protocol
from schemas.cursor import NO_EPOCH, Cursor

from .wsserver import text_frame

log = logging.getLogger(__name__)

SESSIONS_BUCKETS: Final = (1, 2, 3, 4, 8, 16, 32)  # sessions per user (the default cap is 16)
SUBSCRIBE_TIMEOUT_S: Final = 5.0
POSITION_CHECK_USERS: Final = 1_000  # users' positions read per round trip
KEEPALIVE_S: Final = 5.0  # PING this often; silence for 3x this long means the link is dead
EXPIRY_SWEEP_S: Final = 1.0  # a session ends at most this long after its token expires

_MESSAGE: Final = frozenset({b"message", "message"})
_SUBSCRIBE: Final = frozenset({b"subscribe", "subscribe"})


class Push(changelog.Live):
    """A live change and its WebSocket frame, rendered once for all of the user's sessions: the
    frame (`text_frame`) is what the server writes, `text` what a session sends through an ASGI
    server without SEND_FRAMES."""

    __slots__ = ("frame", "text")

    def __init__(self, message: bytes | str) -> None:
        super().__init__(message)
        render = protocol.feed if self.feed else protocol.change
        self.text = render(str(self.cursor), self.payload)
        self.frame = text_frame(self.text.encode())


class Flushable(Protocol):
    def flush(self) -> None:
        """Write what was queued during the hub's read (never blocks)."""


class Listener(Protocol):
    expires_at: float  # unix seconds: when the client's token expires

    @property
    def cursor(self) -> Cursor | None:
        """The change the client has last been sent; None while the session is busy (starting,
        replaying, writing: it is not idle at a position the position check may judge)."""

    def push_nowait(self, change: Push) -> None:
        """Queue a live change; never blocks (a full queue closes the session)."""

    def resync(self) -> None:
        """Live messages may have been lost: catch up from the change log."""

    def expire(self) -> None:
        """Past `expires_at`: end the session (never blocks)."""


class Hub:
    """Subscribes a user's channel while they have a session here. Pub/sub is at-most-once,
    so it is only the fast path: after the connection drops, every session re-reads its
    change log from its own cursor (`Listener.resync`).

    The hub reads replies straight off one redis-py connection (no `PubSub` object): a
    message costs one parse and one dict lookup, with no timeout armed per read. A frozen or
    half-open link is caught by a keepalive PING instead of a socket timeout. It also ends the
    sessions whose token expired (`Listener.expire`), within EXPIRY_SWEEP_S, and checks the
    sessions' positions against their change logs every `position_check_s` (`_check_positions`;
    0: never; the gateway role sets NOTIFIER_GATEWAY_POSITION_CHECK_S)."""

    def __init__(
        self, redis: Redis, *, keepalive_s: float = KEEPALIVE_S, position_check_s: float = 0.0
    ) -> None:
        self._redis = redis
        self._keepalive_s = keepalive_s
        self._position_check_s = position_check_s
        self._listeners: dict[str, set[Listener]] = {}
        self._confirmed: dict[bytes, anyio.Event] = {}
        self._conn: AbstractConnection | None = None
        self._last_seen = 0.0
        self._stopping = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._next_expiry = math.inf  # no session's token expires before this
        self._unflushed: list[Flushable] = []  # sessions given changes by the current read
        self._loop: asyncio.AbstractEventLoop | None = None  # the running one, once a session flushes
        self.delivered = 0
        self.metrics = metrics.current()  # the sessions' metrics and tracing too
        self.tracing = tracing.current()
        self.metrics.add_collector(self._collect)

    @property
    def subscribed(self) -> bool:
        """The pub/sub connection is up and subscribed (readiness)."""
        return self._conn is not None

    def _collect(self) -> Iterator[Metric]:
        """At scrape time: sessions, and how many users hold how many (no user labels)."""
        counts = [len(group) for group in self._listeners.values()]
        yield GaugeMetricFamily("notifier_gateway_sessions", "authenticated sessions", value=sum(counts))
        buckets = [(str(float(b)), sum(1 for c in counts if c <= b)) for b in SESSIONS_BUCKETS]
        yield HistogramMetricFamily(
            "notifier_gateway_sessions_per_user",
            "users by how many sessions they hold on this gateway",
            buckets=[*buckets, ("+Inf", len(counts))],
            sum_value=sum(counts),
        )

    def sessions_of(self, user: str) -> int:
        return len(self._listeners.get(user, ()))

    def listeners(self) -> Iterator[Listener]:
        for group in self._listeners.values():
            yield from group

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("gateway pub/sub")
        first = True
        with anyio.CancelScope() as self._scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keepalive)
                tg.start_soon(self._sweep_expired)
                tg.start_soon(self._check_positions)
                while not self._stopping.is_set():
                    conn = self._redis.connection_pool.make_connection()
                    conn.socket_timeout = None  # reads wait for traffic; the keepalive finds a dead link
                    try:
                        await conn.connect()
                        await self._subscribe_all(conn)
                        if first:
                            task_status.started()
                            first = False
                        else:
                            for listener in self.listeners():
                                listener.resync()
                        await self._read(conn, backoff)
                    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                        await backoff.sleep(exc)
                    finally:
                        self._conn = None
                        for waiting in self._confirmed.values():
                            waiting.set()  # the next connection subscribes them (and resyncs)
                        self._confirmed.clear()
                        with anyio.CancelScope(shield=True):
                            await conn.disconnect(nowait=True)
                tg.cancel_scope.cancel()

    def stop(self) -> None:
        self._stopping.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _subscribe_all(self, conn: AbstractConnection) -> None:
        done = {keys.user_channel(u) for u in self._listeners}
        await conn.send_command("SUBSCRIBE", keys.gateway_control(), *done, check_health=False)
        while missing := {keys.user_channel(u) for u in self._listeners} - done:
            await conn.send_command("SUBSCRIBE", *missing, check_health=False)  # arrived meanwhile
            done |= missing
        self._last_seen = time.monotonic()
        self._conn = conn  # no await since the last check: nobody is missed

    async def _keepalive(self) -> None:
        """PING the live connection; one silent for 3 periods is closed, which ends the read."""
        while True:
            await anyio.sleep(self._keepalive_s)
            conn = self._conn
            if conn is None:
                continue
            if time.monotonic() - self._last_seen > 3 * self._keepalive_s:
                log.warning("gateway pub/sub silent for %.0fs: reconnecting", 3 * self._keepalive_s)
                self._conn = None
                await conn.disconnect(nowait=True)
                continue
            try:
                await conn.send_command("PING", check_health=False)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                pass  # the reader sees the broken link and reconnects

    def expire_by(self, at: float) -> None:
        """Have the sweep look at the sessions again by `at` (a token's new expiry)."""
        self._next_expiry = min(self._next_expiry, at)

    async def _sweep_expired(self) -> None:
        """Ends the sessions whose token expired: one timer for the process, not one per session
        (a uvloop timer is ~0.6 KB), and a pass over the sessions only once the earliest is due."""
        while True:
            await anyio.sleep(EXPIRY_SWEEP_S)
            now = time.time()
            if now < self._next_expiry:
                continue
            self._next_expiry = math.inf
            for listener in [s for group in self._listeners.values() for s in group]:
                if listener.expires_at <= now:
                    listener.expire()
                else:
                    self._next_expiry = min(self._next_expiry, listener.expires_at)

    async def _check_positions(self) -> None:
        """Pub/sub is at-most-once, and a resync covers only the losses the hub sees (a dropped
        link, a moved slot). Every `position_check_s` this reads each user's last change number
        (`changelog.positions`); a session still before the one read a round earlier missed a
        live push it should long have had (a subscription lost without a word, a message
        dropped) and catches up from the log (`Listener.resync`): counted, logged, never
        silent. Busy sessions (starting, replaying, writing to a slow socket) are not judged."""
        if self._position_check_s <= 0:
            return
        earlier: dict[str, tuple[str, int]] = {}
        while True:
            await anyio.sleep(self._position_check_s)
            users = list(self._listeners)
            now: dict[str, tuple[str, int]] = {}
            try:
                for at in range(0, len(users), POSITION_CHECK_USERS):
                    chunk = users[at : at + POSITION_CHECK_USERS]
                    now.update(zip(chunk, await changelog.positions(self._redis, chunk), strict=True))
            except (*REDIS_UNAVAILABLE, RedisError) as exc:
                log.debug("position check skipped: %s", exc)  # the links' own loops report Redis
                continue
            # judged only where the log kept its epoch over the round: one recreated meanwhile
            # (a Redis that lost its data) sends its sessions a refetch of its own
            behind = [
                listener
                for user, (epoch, number) in earlier.items()
                if now.get(user, ("", 0))[0] == epoch
                for listener in tuple(self._listeners.get(user, ()))
                if (cursor := listener.cursor) is not None and _behind(cursor, epoch, number)
            ]
            earlier = now
            if behind:
                log.warning("position check: %d sessions missed a live push; catching up", len(behind))
                self.metrics.position_resyncs.inc(len(behind))
                for listener in behind:
                    listener.resync()

    async def _read(self, conn: AbstractConnection, backoff: Backoff) -> None:
        first = True
        while not self._stopping.is_set():
            reply: Any = await conn.read_response(disconnect_on_error=False)
            self._last_seen = time.monotonic()
            if first:
                backoff.reset()
                first = False
            kind = reply[0]
            if kind in _MESSAGE:
                self._dispatch(reply[1], reply[2])
            elif kind in _SUBSCRIBE:
                channel = reply[1] if isinstance(reply[1], bytes) else reply[1].encode()
                event = self._confirmed.pop(channel, None)
                if event is not None:
                    event.set()

    def _dispatch(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        listeners = self._listeners.get(keys.user_of_channel(name))
        if not listeners:
            return
        try:
            change = Push(data)
        except ValueError:  # layouts.RESYNC_MESSAGE, or a worker of another version: the log knows
            for listener in tuple(listeners):
                listener.resync()
            return
        for listener in tuple(listeners):
            listener.push_nowait(change)
        self.delivered += len(listeners)

    def flush_soon(self, session: Flushable) -> None:
        """Have `session.flush()` called once the hub's read is done (all replies already
        received are dispatched), with every other session given a change meanwhile: a burst
        for one client fills its queue as it did when each change woke its writer."""
        if not self._unflushed:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._flush)
        self._unflushed.append(session)

    def _flush(self) -> None:
        sessions, self._unflushed = self._unflushed, []
        for session in sessions:
            try:
                session.flush()
            except Exception:  # a bug: the other sessions still get theirs
                log.exception("live flush failed")

    async def register(self, user: str, listener: Listener) -> None:
        """Add `listener`; returns once its user's channel subscription is live (or the link is
        being rebuilt, which subscribes it and resyncs it)."""
        self.expire_by(listener.expires_at)
        channel = keys.user_channel(user).encode()
        group = self._listeners.get(user)
        if group:
            group.add(listener)
            # another session of the user is still waiting for the subscription: this one waits
            # too, or it could read its log before the channel carries the next change
            pending = self._confirmed.get(channel)
            if pending is not None:
                await self._confirmation(user, listener, pending)
            return
        self._listeners[user] = {listener}
        subscribe = self._subscriber(user)
        if subscribe is None:
            return
        confirmed = self._confirmed[channel] = anyio.Event()
        try:
            await subscribe()
        except BaseException:
            self._confirmed.pop(channel, None)
            with anyio.CancelScope(shield=True):
                await self.unregister(user, listener)
            raise
        try:
            await self._confirmation(user, listener, confirmed)
        finally:
            if not confirmed.is_set():
                self._confirmed.pop(channel, None)

    async def _confirmation(self, user: str, listener: Listener, confirmed: anyio.Event) -> None:
        """Wait for `confirmed` (the channel's subscription is live); unregister `listener` if it
        does not come in time or the wait is cancelled."""
        try:
            with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S):
                await confirmed.wait()
            if not confirmed.is_set():
                raise RedisTimeoutError(f"subscription not confirmed in {SUBSCRIBE_TIMEOUT_S}s")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.unregister(user, listener)
            raise

    def _subscriber(self, user: str) -> Callable[[], Awaitable[None]] | None:
        """What sends the subscription of `user`'s channel, or None while the link is being
        rebuilt (the rebuild subscribes every user and resyncs them)."""
        conn = self._conn
        if conn is None:
            return None
        return partial(conn.send_command, "SUBSCRIBE", keys.user_channel(user), check_health=False)

    async def unregister(self, user: str, listener: Listener) -> None:
        group = self._listeners.get(user)
        if group is None:
            return
        group.discard(listener)
        if group:
            return
        del self._listeners[user]
        conn = self._conn
        if conn is not None:
            with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S, shield=True):
                try:
                    await conn.send_command("UNSUBSCRIBE", keys.user_channel(user), check_health=False)
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass  # the reconnect subscribes only users that still have sessions


def _behind(ours: Cursor, epoch: str, number: int) -> bool:
    """Whether a session at `ours` has not been sent change `number` of the log of `epoch`
    (another epoch: the log was recreated, and the catch-up tells the client to refetch)."""
    if epoch == NO_EPOCH:
        return False
    return ours.epoch != epoch or ours.number < number
