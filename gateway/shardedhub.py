"""The hub on a Redis Cluster: sharded pub/sub, one plain connection per master."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import anyio
from anyio.abc import TaskGroup, TaskStatus
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, MovedError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds.cluster import CLUSTER_UNAVAILABLE, REFRESH_GAP_S, Cluster
from notifier.runtime.lifecycle import Backoff
from schemas import keys

from .hub import KEEPALIVE_S, SUBSCRIBE_TIMEOUT_S, Hub, Listener

log = logging.getLogger(__name__)

_SMESSAGE: Final = frozenset({b"smessage", "smessage"})
_SSUBSCRIBE: Final = frozenset({b"ssubscribe", "ssubscribe"})
_SUNSUBSCRIBE: Final = frozenset({b"sunsubscribe", "sunsubscribe"})
_LINK_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, OSError, *CLUSTER_UNAVAILABLE)


@dataclass(eq=False)
class _Link:
    """One master's connection, the users whose channels it carries, and its reader."""

    node: str
    conn: AbstractConnection
    users: set[str] = field(default_factory=set)
    last_seen: float = field(default_factory=time.monotonic)
    reader: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    dead: bool = False


class ShardedHub(Hub):
    """Hub on a cluster: each user's channel is SSUBSCRIBEd on the master owning its slot (one
    SSUBSCRIBE per slot: Redis refuses one across slots), over one connection per master
    (redis-py 5's asyncio cluster has no pub/sub: redis/redis-py#2219).

    A change of topology is repaired where it happened: a lost link (its master failed over,
    CLIENT KILL), Redis pushing `sunsubscribe` (a slot migrated away) or MOVED on a subscribe
    refreshes the slot map, re-homes only the users whose channel is no longer carried by its
    master's link, and resyncs only their sessions from their change logs, as the single-Redis
    hub does after a reconnect: pub/sub stays the at-most-once fast path. Other links and
    their sessions are untouched."""

    def __init__(
        self, cluster: Cluster, *, keepalive_s: float = KEEPALIVE_S, position_check_s: float = 0.0
    ) -> None:
        super().__init__(cluster, keepalive_s=keepalive_s, position_check_s=position_check_s)
        self._cluster = cluster
        self._links: dict[str, _Link] = {}  # node name -> link
        self._leaving: set[bytes] = set()  # channels we unsubscribed (their sunsubscribe is ours)
        self._unsynced: set[str] = set()  # users whose subscription lapsed: resync once re-homed
        self._trouble = anyio.Event()  # a link or a subscription needs repair
        self._backoff = Backoff("gateway sharded pub/sub")
        self._repaired_at = 0.0

    @property
    def subscribed(self) -> bool:
        """Every master's link is up and subscribed (readiness)."""
        return bool(self._links) and not any(link.dead for link in self._links.values())

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        first, refresh = True, False  # the first build trusts the map it was given, once
        with anyio.CancelScope() as self._scope:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._sweep_expired)
                    tg.start_soon(self._keepalive_links)
                    tg.start_soon(self._check_positions)
                    while not self._stopping.is_set():
                        try:
                            await self._repair(tg, refresh=refresh)
                        except _LINK_ERRORS as exc:
                            refresh = True
                            await self._backoff.sleep(exc)
                            continue
                        refresh = True
                        if first:
                            task_status.started()
                            first = False
                        await self._trouble.wait()
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    for link in list(self._links.values()):
                        await self._close(link)

    def _node_of(self, user: str) -> str:
        """The master of `user`'s channel's slot, as last known (MOVED replies applied)."""
        slot = _slot(keys.user_channel(user))
        return str(self._cluster.nodes_manager.get_node_from_slot(slot).name)

    async def _repair(self, tg: TaskGroup, *, refresh: bool) -> None:
        """Links for the masters that carry channels, every user's channel on its master's
        link; the users re-homed are resynced."""
        self._trouble = anyio.Event()
        if refresh:
            since = time.monotonic() - self._repaired_at
            if since < REFRESH_GAP_S:  # a refresh this soon after the last would be skipped
                await anyio.sleep(REFRESH_GAP_S - since)
            await self._cluster.refresh()
        self._repaired_at = time.monotonic()
        masters = {node.name: node for node in await self._cluster.masters()}
        for link in list(self._links.values()):
            if link.dead or link.node not in masters:
                self._unsynced |= link.users
                await self._close(link)
        if not self._links:  # the first build, or every link lost: one per master
            for node in masters.values():
                await self._open(tg, node)
        while moving := self._misplaced():
            for node, users in moving.items():
                if node not in masters:
                    raise ClusterDownError(f"{node} owns a slot but is no master in the map")
                link = self._links.get(node) or await self._open(tg, masters[node])
                link.users |= users
                self._unsynced |= users
                await _ssubscribe(link.conn, [keys.user_channel(u) for u in users])
        # no await since the last check: every user's channel is on its master's link
        if refresh:
            resync = [listener for u in self._unsynced for listener in self._listeners.get(u, ())]
            log.info(
                "sharded pub/sub repaired: %d users re-homed, %d sessions resync",
                len(self._unsynced),
                len(resync),
            )
            for listener in resync:
                listener.resync()
        self._unsynced.clear()

    def _misplaced(self) -> dict[str, set[str]]:
        """Master -> the users with sessions whose channel its link does not carry yet."""
        carried = {u: link.node for link in self._links.values() for u in link.users}
        out: dict[str, set[str]] = {}
        for user in self._listeners:
            node = self._node_of(user)
            if carried.get(user) != node:
                out.setdefault(node, set()).add(user)
        return out

    async def _open(self, tg: TaskGroup, node: ClusterNode) -> _Link:
        """A link to `node`, once it says it is a master (its own line of CLUSTER NODES, which
        any client of a cluster may send, unlike ROLE). A replica accepts SSUBSCRIBE too: a map
        taken just before a failover (or served by a restarted master from its old nodes.conf)
        would leave channels on the old master, now a replica, and their pushes stopped there."""
        conn = self._cluster.node_client(node).connection_pool.make_connection()
        conn.socket_timeout = None  # reads wait; the keepalive finds a dead link
        try:
            with anyio.fail_after(SUBSCRIBE_TIMEOUT_S):  # TimeoutError is an OSError: a lost link
                await conn.connect()
                await conn.send_command("CLUSTER", "NODES", check_health=False)  # ROLE is @admin
                flags = _own_flags(await conn.read_response())
            if "master" not in flags:
                raise ClusterDownError(
                    f"{node.name} is {','.join(flags)}, not a master: the slot map is stale"
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.disconnect(nowait=True)
            raise
        link = self._links[node.name] = _Link(node.name, conn)
        tg.start_soon(self._read_link, link)
        return link

    async def _close(self, link: _Link) -> None:
        if self._links.get(link.node) is link:
            del self._links[link.node]
        link.dead = True
        link.reader.cancel()
        for user in link.users:
            waiting = self._confirmed.pop(keys.user_channel(user).encode(), None)
            if waiting is not None:
                waiting.set()  # the repair subscribes it elsewhere (and resyncs it)
        await link.conn.disconnect(nowait=True)

    async def _read_link(self, link: _Link) -> None:
        with link.reader:
            try:
                await self._read_replies(link)
            except (*_LINK_ERRORS, RedisError) as exc:
                if not link.dead:
                    log.warning("sharded pub/sub to %s lost: %s", link.node, exc)
                link.dead = True
                self._trouble.set()

    async def _read_replies(self, link: _Link) -> None:
        first = True
        while True:
            try:
                reply: Any = await link.conn.read_response(disconnect_on_error=False)
            except MovedError as exc:  # a subscribe met a slot that moved: patch the map, re-home
                self._cluster.moved(exc)
                self._lapsed(link, {u for u in link.users if _slot(keys.user_channel(u)) == exc.slot_id})
                continue
            link.last_seen = time.monotonic()
            if first:
                self._backoff.reset()
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
                    continue
                gone = keys.user_of_channel(channel.decode())  # its slot migrated away
                self._lapsed(link, {gone} & link.users)

    def _lapsed(self, link: _Link, users: set[str]) -> None:
        """`users`' subscriptions on `link` ended without us: the repair re-homes them."""
        link.users -= users
        self._unsynced |= users & self._listeners.keys()
        self._trouble.set()

    async def _keepalive_links(self) -> None:
        while True:
            await anyio.sleep(self._keepalive_s)
            for link in list(self._links.values()):
                if time.monotonic() - link.last_seen > 3 * self._keepalive_s:
                    log.warning("sharded pub/sub to %s silent: reconnecting", link.node)
                    await link.conn.disconnect(nowait=True)
                    continue
                try:
                    await link.conn.send_command("PING", check_health=False)
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    pass  # its reader sees the broken link and the hub repairs it

    def _subscriber(self, user: str) -> Callable[[], Awaitable[None]] | None:
        link = self._links.get(self._node_of(user))
        if link is None or link.dead:  # the repair subscribes it (and resyncs it)
            self._unsynced.add(user)
            self._trouble.set()
            return None
        link.users.add(user)
        return partial(_ssubscribe, link.conn, [keys.user_channel(user)])

    async def unregister(self, user: str, listener: Listener) -> None:
        group = self._listeners.get(user)
        if group is None:
            return
        group.discard(listener)
        if group:
            return
        del self._listeners[user]
        self._unsynced.discard(user)
        for link in list(self._links.values()):
            if user in link.users:
                link.users.discard(user)
                channel = keys.user_channel(user)
                self._leaving.add(channel.encode())
                with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S, shield=True):
                    try:
                        await link.conn.send_command("SUNSUBSCRIBE", channel, check_health=False)
                    except (RedisConnectionError, RedisTimeoutError, OSError):
                        pass  # the repair subscribes only users that still have sessions


async def _ssubscribe(conn: AbstractConnection, channels: Iterable[str]) -> None:
    """One SSUBSCRIBE per slot, written at once."""
    by_slot: dict[int, list[str]] = {}
    for channel in channels:
        by_slot.setdefault(_slot(channel), []).append(channel)
    if by_slot:
        await conn.send_packed_command(
            conn.pack_commands([("SSUBSCRIBE", *group) for group in by_slot.values()]), check_health=False
        )


def _own_flags(nodes: bytes | str) -> list[str]:
    """The flags of the answering node's own line of a CLUSTER NODES reply (`myself,master`)."""
    text = nodes.decode() if isinstance(nodes, bytes) else nodes
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and "myself" in fields[2].split(","):
            return fields[2].split(",")
    raise ClusterDownError(f"no line of its own in CLUSTER NODES: {text[:200]!r}")


def _slot(channel: str) -> int:
    return int(key_slot(channel.encode()))


def hub_for(redis: Redis, *, position_check_s: float) -> Hub:
    """The hub for the role's Redis: sharded pub/sub on a cluster, plain pub/sub otherwise."""
    hub = ShardedHub if isinstance(redis, Cluster) else Hub
    return hub(redis, position_check_s=position_check_s)
