"""Lua scripts run by EVALSHA, the inbox's scripts assembled from `lua/`, and pipelines of
script calls that reload the scripts once if Redis lost them (NOSCRIPT after a restart)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

Arg = str | int | bytes
Command = tuple[Arg, ...]


class Script:
    """Unlike redis-py's pipeline scripts, queuing costs no SCRIPT EXISTS round trip."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        """The EVALSHA command, for `run_commands`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


async def run_commands(redis: Redis, scripts: Sequence[Script], commands: Sequence[Command]) -> list[Any]:
    """Run `commands` in one round trip; error replies come back as values.

    If Redis forgot a script, every script is loaded and all the commands run again, which is
    safe because every script this product pipelines is idempotent."""
    results = await _pipelined(redis, commands)
    if any(isinstance(r, NoScriptError) for r in results):
        for script in scripts:
            await redis.script_load(script.source)
        results = await _pipelined(redis, commands)
    return results


async def _pipelined(redis: Redis, commands: Sequence[Command]) -> list[Any]:
    """A lean pipeline: the commands packed by hiredis in C and written at once, then one
    reply read per command on the same connection. redis-py's Pipeline costs several times
    more per command (argument encoding in Python, per-command bookkeeping), which shows at
    thousands of script calls a second."""
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        packed = b"".join(pack_command(c) for c in commands)  # type: ignore[arg-type]  # stub: 1-tuple
        await conn.send_packed_command(packed, check_health=False)
        results: list[Any] = []
        for _ in commands:
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:
                results.append(exc)
    except BaseException:
        await conn.disconnect()  # replies may be left unread: never reuse this connection
        raise
    finally:
        await pool.release(conn)
    return results


def _source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(name).read_text()


@dataclass(frozen=True, slots=True)
class InboxScripts:
    apply: Script
    mark_read: Script
    page: Script

    @classmethod
    def load(cls) -> InboxScripts:
        return cls(
            apply=Script(_source("apply.lua")),
            mark_read=Script(_source("mark_read.lua")),
            page=Script(_source("page.lua")),
        )
