"""Redis Cluster, as the product uses it: redis-py's asyncio `RedisCluster` for single commands,
plus what it lacks here: pipelined calls split by the master owning each key's slot (one lean
pipeline per master, all at once, MOVED/ASK/TRYAGAIN/CLUSTERDOWN followed, but a script's ASK
waited out: it reaches keys it does not name), WAIT on each master's
own connection, and a plain client per master for pub/sub and WATCH/MULTI (redis-py 5's asyncio
cluster has neither: redis/redis-py#2219). Two private names of redis-py's are used, for its own
slot-map refresh and MOVED patching rather than a copy of them: `_initialize` and the nodes
manager's `_moved_exception` (pinned by tests/unit/feeds/test_cluster_private.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import anyio
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterParser, ClusterPipeline, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

Arg = str | int | bytes
Command = tuple[Arg, ...]
Exchange = Callable[[Redis, Sequence[Command]], Any]  # scripts._pipelined: one round trip

# What a cluster answers while a slot has no (known) master: failover, reshard, still forming.
CLUSTER_UNAVAILABLE: Final = (ClusterError, TryAgainError, AskError, RedisClusterException)
# The error replies of a Redis refusing commands for now: out of memory (noeviction), a replica
# since a failover (READONLY), an ACL changed under the product (NOPERM). Never the event's fault.
REDIS_REFUSING: Final = (OutOfMemoryError, ReadOnlyError, NoPermissionError)
_REFUSALS: Final = {"OOM": OutOfMemoryError, "READONLY": ReadOnlyError, "NOPERM": NoPermissionError}


def error_reply(text: str) -> ResponseError:
    """An error reply a script caught (pcall) and returned as text, as redis-py would raise it:
    a refusal (REDIS_REFUSING) must not be taken for an error of the item's own."""
    return _REFUSALS.get(text.split(" ", 1)[0], ResponseError)(text)


# What any Redis (one, or a cluster) raises while unreachable, refusing, or while its topology
# changes: retried with backoff by every loop, answered 503 by the API.
REDIS_UNAVAILABLE: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    *CLUSTER_UNAVAILABLE,
    *REDIS_REFUSING,
)


def closed_transport(exc: BaseException) -> bool:
    """uvloop's RuntimeError for a write on a socket Redis just closed: redis-py connecting
    (CLIENT SETINFO) while the server restarts raises it instead of a ConnectionError. An
    outage like the others, never a bug of ours (a worker died of it in a chaos run)."""
    return isinstance(exc, RuntimeError) and "handler is closed" in str(exc)


RETRY_PAUSE_S: Final = 0.1
REFRESH_GAP_S: Final = 0.2  # between rounds while a slot has no master (failover, forming)
_TRANSIENT: Final = (TryAgainError, ClusterDownError)  # retried after a pause, without a refresh


def _scripted(command: Command) -> bool:
    return command[0] in ("EVALSHA", "EVAL", "FCALL")


def key_of(command: Command) -> Arg:
    """The key that routes `command`: EVAL(SHA)'s first key, XREADGROUP's first stream, else
    its first argument."""
    if command[0] in ("EVALSHA", "EVAL"):
        return command[3]
    if command[0] == "XREADGROUP":
        return command[command.index("STREAMS") + 1]
    return command[1]


def slot_of(redis: Redis, key: Arg) -> str:
    """The cluster slot of `key`; a single Redis is one slot ("")."""
    return str(redis.keyslot(key)) if isinstance(redis, Cluster) else ""


def shard_of(redis: Redis, key: Arg) -> str:
    """The master owning `key`'s slot, as last known (else the slot); a single Redis is one ("")."""
    if not isinstance(redis, Cluster):
        return ""
    slot = redis.keyslot(key)
    owners = redis.nodes_manager.slots_cache.get(slot)
    return str(owners[0].name) if owners else f"slot {slot}"


def calls_of(
    members: Iterable[int],
    group_of: Callable[[int], str],
    most: int,
    weight: Callable[[int], int] = lambda _: 1,
) -> list[tuple[str, list[int]]]:
    """`members` (in their order) as script calls: those of one group (`slot_of` or `shard_of`
    of their keys) together, each call weighing at most `most` (a heavier member alone)."""
    groups: dict[str, list[int]] = {}
    for m in members:
        groups.setdefault(group_of(m), []).append(m)
    calls: list[tuple[str, list[int]]] = []
    for name, group in groups.items():
        load = most  # the current call is full: the group's first member starts one
        for m in group:
            if load + weight(m) > most:
                calls.append((name, []))
                load = 0
            calls[-1][1].append(m)
            load += weight(m)
    return calls


async def client_for(redis: Redis, key: Arg) -> Redis:
    """A client that runs WATCH/MULTI on `key`'s slot: `redis` itself, or on a cluster a plain
    client of the master owning the slot (redis-py 5's cluster pipelines have no transactions)."""
    return await redis.client_for(key) if isinstance(redis, Cluster) else redis


class _Pipeline(ClusterPipeline):  # type: ignore[misc]  # redis-py is untyped here (pyproject)
    """redis-py's cluster pipeline, whose lost links are lost connections (see execute_command):
    its retry resets the slot map by closing connections other tasks' pipelines still use."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            replies: list[Any] = await super().execute(raise_on_error, allow_redirections)
        except (AttributeError, RuntimeError) as exc:
            raise RedisConnectionError(f"connection reset by a cluster map refresh: {exc!r}") from exc
        return replies


class Cluster(RedisCluster):  # type: ignore[misc]  # redis-py is untyped here (pyproject)
    """`RedisCluster` that also runs the product's lean pipelines per master.

    A command's outcome after a MOVED, an ASK, a lost connection or a retry is applied at most
    once per round; every command this product pipelines is idempotent (scripts dedupe, ZADD of
    the same member), so repeating one whose reply was lost is safe."""

    def __init__(
        self, seeds: Sequence[tuple[str, int]], *, retry_budget_s: float, jobs_url: str = "", **options: Any
    ) -> None:
        super().__init__(startup_nodes=[ClusterNode(host, port) for host, port in seeds], **options)
        self._options = options
        # arq's job queue: a plain Redis beside the cluster (arq has no cluster support)
        self.jobs: Redis | None = Redis.from_url(jobs_url) if jobs_url else None
        self._retry_budget_s = retry_budget_s
        self._node_clients: dict[str, Redis] = {}
        self._refreshed_at = 0.0
        self._refresh_lock = anyio.Lock()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except (AttributeError, RuntimeError) as exc:
            # redis-py 5 resets the slot map by closing node connections that other tasks are
            # still using (its aclose on a lost connection): they fail inside redis-py with a
            # closed transport. That is a lost connection; the next command reconnects.
            raise RedisConnectionError(f"connection reset by a cluster map refresh: {exc!r}") from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # redis-py's refusal of both
        return _Pipeline(self)

    def node_client(self, node: ClusterNode) -> Redis:
        """A plain client of one master (its replies parsed as the cluster's: MOVED is MovedError)."""
        client = self._node_clients.get(node.name)
        if client is None:
            pool = ConnectionPool(
                host=node.host,
                port=node.port,
                parser_class=ClusterParser,
                socket_timeout=self._options.get("socket_timeout"),
                socket_connect_timeout=self._options.get("socket_connect_timeout"),
                username=self._options.get("username"),
                password=self._options.get("password"),
            )
            client = self._node_clients[node.name] = Redis.from_pool(pool)
        return client

    async def client_for(self, key: Arg) -> Redis:
        """A plain client of the master owning `key`'s slot, as last known."""
        if self._initialize:
            await self.initialize()
        return self.node_client(self.nodes_manager.get_node_from_slot(self.keyslot(key)))

    async def masters(self) -> list[ClusterNode]:
        if self._initialize:
            await self.initialize()
        return list(self.get_primaries())

    async def refresh(self) -> None:
        """Re-read the slot map after a lost master or a failover, as redis-py does itself (its
        initialize, under its lock); refreshes asked for within REFRESH_GAP_S of the last one
        are one refresh: every caller that saw the old map asks at once."""
        asked = time.monotonic()
        async with self._refresh_lock:
            if self._refreshed_at >= asked - REFRESH_GAP_S:
                return
            self._initialize = True
            try:
                await self.initialize()
            except (RedisClusterException, RedisError, OSError) as exc:
                log.warning("cluster map refresh failed: %s", exc)
            finally:
                self._refreshed_at = time.monotonic()

    def moved(self, error: MovedError) -> None:
        """Patch one slot's owner from a MOVED reply (redis-py's own way: no reconnects)."""
        self.nodes_manager._moved_exception = error

    async def shutdown(self) -> None:
        """Close everything for good. (`aclose` is redis-py's reset: it calls it itself after a
        lost connection, and the client reconnects on its next command.)"""
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose()
        if self.jobs is not None:
            await self.jobs.aclose()
        await self.aclose()

    async def pipelined(
        self, commands: Sequence[Command], exchange: Exchange, wait: Command | None
    ) -> list[Any]:
        """Every command's reply (errors as values), in order; with `wait`, one more value: the
        fewest replicas any master's WAIT confirmed (WAIT after that master's writes, on the
        same connection)."""
        if self._initialize:
            await self.initialize()
        replies: list[Any] = [None] * len(commands)
        todo = list(range(len(commands)))
        asking: dict[int, str] = {}  # command index -> node named by ASK
        replicas: int | None = None
        deadline = time.monotonic() + self._retry_budget_s
        while todo:
            failed: BaseException | None = None
            rounds: dict[str, list[int]] = {}
            try:
                for i in todo:
                    name = (
                        asking.get(i)
                        or self.nodes_manager.get_node_from_slot(self.keyslot(key_of(commands[i]))).name
                    )
                    rounds.setdefault(name, []).append(i)
            except (SlotNotCoveredError, RedisClusterException) as exc:
                failed, rounds = exc, {}
            results: dict[str, list[Any] | BaseException] = {}
            async with anyio.create_task_group() as tg:
                for name, indexes in rounds.items():
                    tg.start_soon(
                        self._node_round,
                        name,
                        [commands[i] for i in indexes],
                        asking,
                        indexes,
                        exchange,
                        wait,
                        results,
                    )
            retry: list[int] = []
            refresh = pause = False
            for name, indexes in rounds.items():
                got = results[name]
                if isinstance(got, BaseException):
                    failed, refresh = got, True
                    retry += indexes
                    continue
                if wait is not None:  # an error (a master just demoted to replica): none confirmed
                    confirmed = got.pop()
                    confirmed = 0 if isinstance(confirmed, BaseException) else int(confirmed)
                    replicas = confirmed if replicas is None else min(replicas, confirmed)
                for i, reply in zip(indexes, got, strict=True):
                    asking.pop(i, None)
                    if isinstance(reply, MovedError):
                        self.moved(reply)
                        retry.append(i)
                    elif isinstance(reply, AskError) and _scripted(commands[i]):
                        # a script names one key and reaches the others from it: on the node
                        # importing the slot it would find those not moved yet missing and
                        # write them anew there (a user's inbox on two masters). It waits for
                        # the slot to finish moving instead (MOVED then names its new master).
                        retry.append(i)
                        pause = True
                    elif isinstance(reply, AskError):
                        asking[i] = f"{reply.host}:{reply.port}"
                        retry.append(i)
                    elif isinstance(reply, _TRANSIENT):
                        retry.append(i)
                    replies[i] = reply
            if failed is not None and not rounds:
                refresh = True
            todo = sorted(retry)
            if not todo:
                break
            if time.monotonic() >= deadline:
                # raised, not returned as values: the caller treats it as Redis being away (the
                # fan-out leaves the batch pending without counting a failed delivery; ingest 503s)
                if isinstance(failed, RedisError):
                    raise failed
                raise ClusterDownError(
                    f"a slot had no master, or was still moving, for {self._retry_budget_s}s"
                )
            if refresh:
                await self.refresh()
            if (
                refresh
                or pause
                or any(isinstance(replies[i], _TRANSIENT) for i in todo)
                or failed is not None
            ):
                await anyio.sleep(RETRY_PAUSE_S)
        if wait is not None:
            replies.append(replicas or 0)
        return replies

    async def _node_round(
        self,
        name: str,
        commands: list[Command],
        asking: dict[int, str],
        indexes: list[int],
        exchange: Exchange,
        wait: Command | None,
        results: dict[str, list[Any] | BaseException],
    ) -> None:
        node = self.get_node(node_name=name)
        host, _, port = name.rpartition(":")
        client = (
            self.node_client(node) if node is not None else self.node_client(ClusterNode(host, int(port)))
        )
        sent: list[Command] = []
        for i, command in zip(indexes, commands, strict=True):
            if i in asking:
                sent.append(("ASKING",))
            sent.append(command)
        if wait is not None:
            sent.append(wait)
        try:
            got = await exchange(client, sent)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            results[name] = exc
            return
        except (RedisError, RuntimeError, AttributeError) as exc:
            # a link cut mid-exchange (a closed transport, a reply cut short) while a master
            # fails over: this round failed and is retried, like a lost connection; escaping the
            # task group it would be an error group no caller expects
            results[name] = RedisConnectionError(f"link to {name} failed: {exc!r}")
            return
        out: list[Any] = []
        for command, reply in zip(sent, got, strict=True):
            if command != ("ASKING",):
                out.append(reply)
        results[name] = out
