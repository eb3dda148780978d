"""The outbox of side effects decided but not yet done (`deliver|ID`, `recall|ID`): a decision's
MULTI adds its effect, the job that carries it out removes it, and the jobs role enqueues whatever
is left. The only code that touches `modfx:`."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas import keys


def deliver(item_id: str) -> str:
    return f"deliver|{item_id}"


def recall(item_id: str) -> str:
    return f"recall|{item_id}"


class Outbox:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def add(pipe: Pipeline, effect: str) -> None:
        pipe.sadd(keys.mod_effects(), effect)

    @staticmethod
    def cancel(pipe: Pipeline, effect: str) -> None:
        pipe.srem(keys.mod_effects(), effect)

    async def pending(self) -> list[str]:
        return sorted(m.decode() for m in await self._redis.smembers(keys.mod_effects()))

    async def done(self, effect: str) -> None:
        await self._redis.srem(keys.mod_effects(), effect)
