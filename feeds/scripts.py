"""Lua scripts run by EVALSHA, the inbox's scripts assembled from `lua/`, and pipelines of
script calls that reload the scripts once if Redis lost them (NOSCRIPT after a restart)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

Arg = str | int | bytes


class Script:
    """Unlike redis-py's pipeline scripts, queuing costs no SCRIPT EXISTS round trip."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[Arg]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    async def __call__(self, redis: Redis, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.source)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


async def run_pipeline(
    redis: Redis, scripts: Sequence[Script], fill: Callable[[Pipeline], None]
) -> list[Any]:
    """Run the commands `fill` queues in one round trip; errors come back as values.

    If Redis forgot a script, every script is loaded and the whole pipeline runs again, which
    is safe because every script this product pipelines is idempotent."""
    for attempt in (1, 2):
        async with redis.pipeline(transaction=False) as pipe:
            fill(pipe)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
            for script in scripts:
                await redis.script_load(script.source)
            continue
        break
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
