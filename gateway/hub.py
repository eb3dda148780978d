"""Hub: the process's one pub/sub connection, routing each user's changes to their sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from notifier.runtime.lifecycle import Backoff
from schemas import keys

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_S = 5.0


class Listener(Protocol):
    def push_nowait(self, cursor: str, payload: str) -> None:
        """Queue a live change; never blocks (a full queue closes the session)."""

    def resync(self) -> None:
        """Live messages may have been lost: catch up from the change log."""


class Hub:
    """Subscribes a user's channel while they have a session here. Pub/sub is at-most-once,
    so it is only the fast path: after the connection drops, every session re-reads its
    change log from its own cursor (`Listener.resync`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._listeners: dict[str, set[Listener]] = {}
        self._confirmed: dict[bytes, anyio.Event] = {}
        self._pubsub: PubSub | None = None
        self._stopping = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self.delivered = 0

    def sessions_of(self, user: str) -> int:
        return len(self._listeners.get(user, ()))

    def listeners(self) -> Iterator[Listener]:
        for group in self._listeners.values():
            yield from group

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("gateway pub/sub")
        first = True
        with anyio.CancelScope() as self._scope:
            while not self._stopping.is_set():
                pubsub = self._redis.pubsub()
                try:
                    done = {keys.user_channel(u) for u in self._listeners}
                    await pubsub.subscribe(keys.gateway_control(), *done)
                    while missing := {keys.user_channel(u) for u in self._listeners} - done:
                        await pubsub.subscribe(*missing)  # sessions that arrived meanwhile
                        done |= missing
                    self._pubsub = pubsub  # no await since the last check: nobody is missed
                    if first:
                        task_status.started()
                        first = False
                    else:
                        for listener in self.listeners():
                            listener.resync()
                    await self._read(pubsub, backoff)
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    self._pubsub = None
                    await backoff.sleep(exc)
                finally:
                    self._pubsub = None
                    with anyio.CancelScope(shield=True):
                        await pubsub.aclose()

    def stop(self) -> None:
        self._stopping.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _read(self, pubsub: PubSub, backoff: Backoff) -> None:
        while not self._stopping.is_set():
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            backoff.reset()
            kind = message["type"]
            if kind == b"message" or kind == "message":
                self._dispatch(message["channel"], message["data"])
            elif kind in (b"subscribe", "subscribe"):
                event = self._confirmed.pop(message["channel"], None)
                if event is not None:
                    event.set()

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        listeners = self._listeners.get(keys.user_of_channel(channel.decode()))
        if not listeners:
            return
        text = data.decode()
        cursor, _, payload = text.partition(" ")
        for listener in tuple(listeners):
            listener.push_nowait(cursor, payload)
        self.delivered += len(listeners)

    async def register(self, user: str, listener: Listener) -> None:
        """Add `listener`; returns once its user's channel subscription is live."""
        group = self._listeners.get(user)
        if group:
            group.add(listener)
            return
        self._listeners[user] = {listener}
        pubsub = self._pubsub
        if pubsub is None:  # reconnecting: run() subscribes every user and resyncs
            return
        channel = keys.user_channel(user).encode()
        confirmed = self._confirmed[channel] = anyio.Event()
        try:
            await pubsub.subscribe(channel)
            with anyio.fail_after(SUBSCRIBE_TIMEOUT_S):
                await confirmed.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.unregister(user, listener)
            raise

    async def unregister(self, user: str, listener: Listener) -> None:
        group = self._listeners.get(user)
        if group is None:
            return
        group.discard(listener)
        if group:
            return
        del self._listeners[user]
        pubsub = self._pubsub
        if pubsub is not None:
            with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S, shield=True):
                try:
                    await pubsub.unsubscribe(keys.user_channel(user))
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass  # the reconnect subscribes only users that still have sessions
