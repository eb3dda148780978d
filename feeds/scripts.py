"""The inbox's Lua scripts, assembled from `lua/` and registered on a client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def _source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    return lua.joinpath("common.lua").read_text() + "\n" + lua.joinpath(name).read_text()


@dataclass(frozen=True, slots=True)
class InboxScripts:
    apply: AsyncScript
    mark_read: AsyncScript
    page: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> InboxScripts:
        return cls(
            apply=redis.register_script(_source("apply.lua")),
            mark_read=redis.register_script(_source("mark_read.lua")),
            page=redis.register_script(_source("page.lua")),
        )
