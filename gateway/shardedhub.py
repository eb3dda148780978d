"""The hub on a Redis Cluster: sharded pub/sub, one plain connection per master."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds.cluster import CLUSTER_UNAVAILABLE, Cluster
from notifier.runtime.lifecycle import Backoff
from schemas import keys

from .hub import KEEPALIVE_S, SUBSCRIBE_TIMEOUT_S, Hub, Listener

log = logging.getLogger(__name__)

_SMESSAGE: Final = frozenset({b"smessage", "smessage"})
_SSUBSCRIBE: Final = frozenset({b"ssubscribe", "ssubscribe"})
_SUNSUBSCRIBE: Final = frozenset({b"sunsubscribe", "sunsubscribe"})
_LINK_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, *CLUSTER_UNAVAILABLE)


class _Moved(Exception):
    """A subscribed channel's slot left this link's master (Redis pushed `sunsubscribe`)."""


@dataclass(eq=False)
class _Link:
    """One master's connection and the users whose channels it carries."""

    node: str
    conn: AbstractConnection
    users: set[str] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)


class ShardedHub(Hub):
    """Hub on a cluster: each user's channel is SSUBSCRIBEd on the master owning its slot (one
    SSUBSCRIBE per slot: Redis refuses one across slots), over one connection per master
    (redis-py 5's asyncio cluster has no pub/sub: redis/redis-py#2219).

    Any change of topology (a link lost, a master failed over, Redis pushing `sunsubscribe`
    because a slot migrated, MOVED on a subscribe) rebuilds every link from a fresh slot map
    and resyncs every session from its change log, as the single-Redis hub does after a
    reconnect: pub/sub stays the at-most-once fast path."""

    def __init__(self, cluster: Cluster, *, keepalive_s: float = KEEPALIVE_S) -> None:
        super().__init__(cluster, keepalive_s=keepalive_s)
        self._cluster = cluster
        self._links: dict[str, _Link] = {}  # node name -> link, while live
        self._leaving: set[bytes] = set()  # channels we unsubscribed (their sunsubscribe is ours)

    @property
    def subscribed(self) -> bool:
        """Every master's link is up and subscribed (readiness)."""
        return bool(self._links)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = Backoff("gateway sharded pub/sub")
        first = True
        with anyio.CancelScope() as self._scope:
            async with anyio.create_task_group() as outer:
                outer.start_soon(self._sweep_expired)
                while not self._stopping.is_set():
                    links: list[_Link] = []
                    try:
                        if not first:
                            await self._cluster.refresh()
                        for node in await self._cluster.masters():
                            conn = self._cluster.node_client(node).connection_pool.make_connection()
                            conn.socket_timeout = None  # reads wait; the keepalive finds a dead link
                            links.append(_Link(node.name, conn))
                            await conn.connect()
                        await self._subscribe_all(links)
                        if first:
                            task_status.started()
                            first = False
                        else:
                            for listener in self.listeners():
                                listener.resync()
                        await self._serve(links, backoff)
                    except (*_LINK_ERRORS, _Moved) as exc:
                        await backoff.sleep(exc)
                    finally:
                        self._links = {}
                        for waiting in self._confirmed.values():
                            waiting.set()  # the next build subscribes them (and resyncs)
                        self._confirmed.clear()
                        self._leaving.clear()
                        with anyio.CancelScope(shield=True):
                            for link in links:
                                await link.conn.disconnect(nowait=True)
                outer.cancel_scope.cancel()

    def _node_of(self, user: str) -> str:
        return str(self._cluster.get_node_from_key(keys.user_channel(user)).name)

    async def _subscribe_all(self, links: list[_Link]) -> None:
        by_node = {link.node: link for link in links}
        while True:
            missing = [u for u in self._listeners if not any(u in link.users for link in links)]
            if not missing:
                break
            for user in missing:
                link = by_node.get(self._node_of(user))
                if link is None:
                    raise _Moved(f"no link to the master of {user}'s slot")
                link.users.add(user)
            for link in links:
                await _ssubscribe(link.conn, [keys.user_channel(u) for u in link.users])
        self._links = by_node  # no await since the last check: nobody is missed

    async def _serve(self, links: list[_Link], backoff: Backoff) -> None:
        failure: list[BaseException] = []
        async with anyio.create_task_group() as tg:
            for link in links:
                tg.start_soon(self._read_link, link, backoff, failure, tg.cancel_scope)
            tg.start_soon(self._keepalive_links, links)
        if failure:
            raise failure[0]

    async def _read_link(
        self, link: _Link, backoff: Backoff, failure: list[BaseException], scope: anyio.CancelScope
    ) -> None:
        try:
            await self._read_replies(link, backoff)
        except (*_LINK_ERRORS, _Moved, RedisError) as exc:
            failure.append(exc)
            scope.cancel()

    async def _read_replies(self, link: _Link, backoff: Backoff) -> None:
        first = True
        while not self._stopping.is_set():
            reply: Any = await link.conn.read_response(disconnect_on_error=False)
            link.last_seen = time.monotonic()
            if first:
                backoff.reset()
                first = False
            kind = reply[0]
            if kind in _SMESSAGE:
                self._dispatch(reply[1], reply[2])
                continue
            channel = reply[1] if isinstance(reply[1], bytes) else str(reply[1]).encode()
            if kind in _SSUBSCRIBE:
                event = self._confirmed.pop(channel, None)
                if event is not None:
                    event.set()
            elif kind in _SUNSUBSCRIBE:
                if channel in self._leaving:
                    self._leaving.discard(channel)
                elif keys.user_of_channel(channel.decode()) in self._listeners:
                    raise _Moved(f"{channel.decode()} left {link.node}")

    async def _keepalive_links(self, links: list[_Link]) -> None:
        while True:
            await anyio.sleep(self._keepalive_s)
            for link in links:
                if time.monotonic() - link.last_seen > 3 * self._keepalive_s:
                    log.warning("sharded pub/sub to %s silent: reconnecting", link.node)
                    await link.conn.disconnect(nowait=True)
                    continue
                try:
                    await link.conn.send_command("PING", check_health=False)
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass  # its reader sees the broken link and the hub rebuilds

    async def register(self, user: str, listener: Listener) -> None:
        """Add `listener`; returns once its user's channel subscription is live (or the hub is
        rebuilding its links, which subscribes it and resyncs it)."""
        self.expire_by(listener.expires_at)
        group = self._listeners.get(user)
        if group:
            group.add(listener)
            return
        self._listeners[user] = {listener}
        link = self._links.get(self._node_of(user)) if self._links else None
        if link is None:  # rebuilding (or the map moved: the reader will see MOVED and rebuild)
            return
        channel = keys.user_channel(user).encode()
        confirmed = self._confirmed[channel] = anyio.Event()
        link.users.add(user)
        try:
            await _ssubscribe(link.conn, [keys.user_channel(user)])
            with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S):
                await confirmed.wait()
            if not confirmed.is_set():
                raise RedisTimeoutError(f"subscription not confirmed in {SUBSCRIBE_TIMEOUT_S}s")
        except BaseException:
            self._confirmed.pop(channel, None)
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
        for link in self._links.values():
            if user in link.users:
                link.users.discard(user)
                channel = keys.user_channel(user)
                self._leaving.add(channel.encode())
                with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S, shield=True):
                    try:
                        await link.conn.send_command("SUNSUBSCRIBE", channel, check_health=False)
                    except (RedisConnectionError, RedisTimeoutError, OSError):
                        pass  # the rebuild subscribes only users that still have sessions


async def _ssubscribe(conn: AbstractConnection, channels: Iterable[str]) -> None:
    """One SSUBSCRIBE per slot, written at once."""
    by_slot: dict[int, list[str]] = {}
    for channel in channels:
        by_slot.setdefault(_slot(channel), []).append(channel)
    if by_slot:
        await conn.send_packed_command(
            conn.pack_commands([("SSUBSCRIBE", *group) for group in by_slot.values()]), check_health=False
        )


def _slot(channel: str) -> int:
    return int(key_slot(channel.encode()))


def hub_for(redis: Redis) -> Hub:
    """The hub for the role's Redis: sharded pub/sub on a cluster, plain pub/sub otherwise."""
    return ShardedHub(redis) if isinstance(redis, Cluster) else Hub(redis)
