"""Lua scripts run by EVALSHA, the inbox's scripts assembled from `lua/` with the keys and
leading arguments they all share, and pipelines of script calls that reload the scripts once if
Redis lost them (NOSCRIPT after a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, TypeVar, overload

from hiredis import pack_command
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas import keys, layouts

from .cluster import Arg as Arg
from .cluster import Cluster
from .cluster import Command as Command
from .limits import FeedLimits


class Script:
    """Unlike redis-py's pipeline scripts, queuing costs no SCRIPT EXISTS round trip."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """The EVALSHA command, for `run_commands`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        if isinstance(redis, Cluster):  # its ASK for a slot moving is waited out (cluster.py)
            [reply] = await run_checked(redis, [self.command(keys, args)], [self])
            return reply
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await _load(redis, self)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


async def run_commands(
    redis: Redis, scripts: Sequence[Script], commands: Sequence[Command], *, wait: Command | None = None
) -> list[Any]:
    """Run `commands` in one round trip (on a cluster, one per master, at once); error replies
    come back as values. `wait` (a WAIT command) follows the writes on their own connection;
    its reply (the fewest replicas any master confirmed) is the last value.

    If Redis forgot a script, every script is loaded and all the commands run again, which is
    safe because every script this product pipelines is idempotent."""
    results = await _run(redis, commands, wait)
    if any(isinstance(r, NoScriptError) for r in results):
        for script in scripts:
            await _load(redis, script)
        results = await _run(redis, commands, wait)
    return results


async def run_checked(redis: Redis, commands: Sequence[Command], scripts: Sequence[Script] = ()) -> list[Any]:
    """The replies of `commands` in one lean round trip (`run_commands`: per master on a
    cluster), the first error reply raised; `scripts`: those the commands may call. The
    fan-out's reads and acks go this way: it asks several per item, and redis-py's Pipeline
    spent most of the worker's CPU on them."""
    replies = await run_commands(redis, scripts, commands) if commands else []
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """Reads that can share a round trip with others (`ask`): the commands, and what their
    replies (as many, in order) mean."""

    commands: Sequence[Command]
    parse: Callable[[Sequence[Any]], T]
    scripts: Sequence[Script] = ()  # those the commands call


@overload
async def ask(redis: Redis, a: Query[T], /) -> tuple[T]: ...
@overload
async def ask(redis: Redis, a: Query[T], b: Query[U], /) -> tuple[T, U]: ...
@overload
async def ask(redis: Redis, a: Query[T], b: Query[U], c: Query[V], /) -> tuple[T, U, V]: ...
async def ask(redis: Redis, *queries: Query[Any]) -> tuple[Any, ...]:
    """Independent queries in one round trip (`run_checked`), each one's answer."""
    commands = [c for q in queries for c in q.commands]
    replies = await run_checked(redis, commands, [s for q in queries for s in q.scripts])
    out, at = [], 0
    for q in queries:
        out.append(q.parse(replies[at : at + len(q.commands)]))
        at += len(q.commands)
    return tuple(out)


async def _run(redis: Redis, commands: Sequence[Command], wait: Command | None) -> list[Any]:
    if isinstance(redis, Cluster):
        replies: list[Any] = await redis.pipelined(commands, _pipelined, wait)
        return replies
    return await _pipelined(redis, [*commands, wait] if wait else commands)


async def _load(redis: Redis, script: Script) -> None:
    """Load `script` into Redis; on a cluster into every node of a fresh slot map, replicas too.
    Redis does not replicate its script cache: a promoted replica answers NOSCRIPT, and
    redis-py's own SCRIPT LOAD goes to the masters of its cached map, which may still name the
    old one (a master frozen past the node timeout came back demoted: NOSCRIPT forever)."""
    if not isinstance(redis, Cluster):
        await redis.script_load(script.source)
        return
    await redis.refresh()
    for node in redis.get_nodes():
        try:
            await redis.node_client(node).script_load(script.source)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            pass  # a node that is down loads it when the scripts are next missing


async def _pipelined(redis: Redis, commands: Sequence[Command]) -> list[Any]:
    """A lean pipeline: the commands packed by hiredis in C and written at once, then every
    reply parsed by hiredis straight off the connection (`_replies`). redis-py's Pipeline costs
    several times more per command (argument encoding in Python, per-command bookkeeping),
    which shows at thousands of script calls a second."""
    async with connection(redis) as roundtrip:
        return await roundtrip(commands)


@contextlib.asynccontextmanager
async def connection(redis: Redis) -> AsyncIterator[Callable[[Sequence[Command]], Awaitable[list[Any]]]]:
    """One pooled connection for round trips of lean pipelines (`_pipelined`) that must share
    it (a WATCH, the reads it guards, then MULTI ... EXEC: feeds/direct.py). Anything raised
    inside disconnects it: replies or a WATCH may be left on it."""
    pool = redis.connection_pool
    conn = await pool.get_connection()
    # one deadline for all the replies instead of a timeout armed per reply (a fifth of the
    # worker's CPU at thousands of replies a second)
    per_reply, conn.socket_timeout = conn.socket_timeout, None

    async def roundtrip(commands: Sequence[Command]) -> list[Any]:
        packed = b"".join(pack_command(c) for c in commands)  # type: ignore[arg-type]  # stub: 1-tuple
        async with asyncio.timeout(per_reply):
            await conn.send_packed_command(packed, check_health=False)
            return await _replies(conn, len(commands))

    try:
        yield roundtrip
    except BaseException as exc:
        await conn.disconnect()
        if isinstance(exc, TimeoutError):
            raise RedisTimeoutError(f"no reply within {per_reply}s") from None
        raise
    finally:
        conn.socket_timeout = per_reply
        await pool.release(conn)


async def _replies(conn: Connection, count: int) -> list[Any]:
    """The next `count` replies on `conn`, error replies as values. With hiredis (a dependency),
    its reader parses them off the connection's buffer, refilled only when it runs dry:
    redis-py's read_response per reply (its checks, the health-check clock, error wrapping)
    cost an eighth of the worker's CPU. A connection that reads otherwise (the unit tier's
    fakeredis) is read reply by reply. redis-py's private names used here (`_parser`,
    `_AsyncHiredisParser._reader`, `read_from_socket`) are pinned by
    tests/integration/feeds/test_lean_pipeline.py."""
    parser = conn._parser
    if type(conn).read_response is not Connection.read_response or not isinstance(
        parser, _AsyncHiredisParser
    ):
        results: list[Any] = []
        for _ in range(count):
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:
                results.append(exc)
        return results
    reader = parser._reader
    results = []
    while len(results) < count:
        reply = reader.gets()
        if reply is NOT_ENOUGH_DATA:
            try:
                await parser.read_from_socket()
            except OSError as exc:
                raise RedisConnectionError(f"error reading from {conn.host}:{conn.port}: {exc}") from exc
            continue
        if isinstance(reply, RedisConnectionError):  # LOADING and the like: as read_response does
            raise reply
        results.append(reply)
    return results


def _source(*names: str, sharded: bool = False, spanning: bool = False) -> str:
    """For a call `spanning` several users, where their keys are (a shebang must come first:
    lua/sharded_keys.lua on a cluster, else lua/declared_keys.lua); the layouts' constants
    (schemas/layouts.py) and user_names (_user_names), common.lua, then the named parts (each
    script's own last); on a cluster live pushes are sharded pub/sub."""
    lua = resources.files(__package__).joinpath("lua")
    prelude = ("sharded_keys.lua" if sharded else "declared_keys.lua",) if spanning else ()
    parts = [lua.joinpath(name).read_text() for name in prelude]
    parts += [layouts.lua_constants(), _user_names()]
    parts += [lua.joinpath(name).read_text() for name in ("common.lua", *names)]
    source = "\n".join(parts)
    if not sharded:
        return source
    # SPUBLISH reaches only the channel's own master (a plain PUBLISH is broadcast to every node)
    return source.replace("call('PUBLISH',", "call('SPUBLISH',").replace(
        "call('PUBSUB', 'NUMSUB',", "call('PUBSUB', 'SHARDNUMSUB',"
    )


def _user_names() -> str:
    """Lua: user_names(items), a user's other keys (user_keys after the first), actors prefix
    and channel, as schemas/keys.py names them, from their items key: apply sends only that."""
    before, after = keys.around_user(keys.toggles)
    names = (keys.inbox, keys.read_marks, keys.changelog, keys.group_actors_prefix, keys.user_channel)
    made = ", ".join(
        " .. ".join([layouts.lua_string(b), "tag", *([layouts.lua_string(a)] if a else [])])
        for b, a in map(keys.around_user, names)
    )
    return (
        "local function user_names(items)\n"
        f"  local tag = items:sub({len(before) + 1}, {-len(after) - 1})\n"
        f"  return {made}\n"
        "end\n"
    )


@dataclass(frozen=True, slots=True)
class InboxScripts:
    apply: Script
    mark_read: Script
    page: Script
    replay: Script
    hidden: Script
    seen: Script
    feed: Script  # home-feed changes, logged and pushed (lua/feed_push.lua)
    trim: Script  # feeds/horizon.py
    sharded: bool  # for a cluster: SPUBLISH, and apply and feed calls spanning a master's slots

    @classmethod
    def load(cls, *, sharded: bool = False) -> InboxScripts:
        return cls(
            apply=Script(_source("apply.lua", sharded=sharded, spanning=True)),
            mark_read=Script(_source("reads.lua", "mark_read.lua", sharded=sharded)),
            page=Script(_source("page.lua")),
            replay=Script(_source("reads.lua", "replay.lua")),
            hidden=Script(_source("hidden.lua")),
            seen=Script(_source("reads.lua", "seen.lua", sharded=sharded)),
            feed=Script(_source("feed_push.lua", sharded=sharded, spanning=True)),
            trim=Script(_source("trim.lua")),
            sharded=sharded,
        )

    def apply_command(self, call_keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """An apply call: every user's items key declared, or on a cluster only the first
        user's (lua/sharded_keys.lua)."""
        return self._spanning(self.apply, call_keys, args, 1)

    def feed_command(self, call_keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """A feed_push call for several users, declared like an apply call."""
        return self._spanning(self.feed, call_keys, args, layouts.FEED_USER_KEYS)

    def _spanning(self, script: Script, call_keys: Sequence[str], args: Sequence[Arg], first: int) -> Command:
        if not self.sharded:
            return script.command(call_keys, args)
        return script.command(call_keys[:first], [*args, *call_keys[first:], len(call_keys) - first])


SCRIPTS = InboxScripts.load()
SHARDED_SCRIPTS = InboxScripts.load(sharded=True)


def scripts_for(redis: Redis) -> InboxScripts:
    return SHARDED_SCRIPTS if isinstance(redis, Cluster) else SCRIPTS


# The field of `keys.toggles` holding the user's state beside the item registers (lua/common.lua).
STATE = layouts.STATE_FIELD


async def user_states(redis: Redis, users: Sequence[str]) -> list[layouts.UserState]:
    """Each of `users`' state (log epoch and last change number, unread count...), one HGET a
    user in one round trip (per master on a cluster)."""
    replies = await run_checked(redis, [("HGET", keys.toggles(u), STATE) for u in users])
    return [layouts.decode_state(raw) for raw in replies]


def user_keys(user: str) -> list[str]:
    """KEYS of every inbox script (lua/common.lua; layouts.USER_KEYS of them)."""
    return [keys.toggles(user), keys.inbox(user), keys.read_marks(user), keys.changelog(user)]


def new_epoch() -> str:
    """A change log's epoch, should a write create the log (one per batch of writes will do)."""
    return os.urandom(6).hex()


def head(user: str | None, limits: FeedLimits | None, epoch: str = "") -> list[Arg]:
    """The leading ARGV of every inbox script (`user` None: apply, which names users per item);
    a reader without `limits` renders groups with as many actors as the last writer did, and
    must not write."""
    return [
        keys.group_actors_prefix(user) if user else "",
        keys.user_channel(user) if user else "",
        epoch or new_epoch(),
        limits.max_groups if limits else 0,
        limits.max_changes if limits else 0,
        limits.shown_actors if limits else 0,
    ]
