"""Dead letters: the entries fan-out gave up on, moved with their error and delivery count."""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis

from schemas import keys

# KEYS: event log, dead letters, errors. ARGV: group, entry id, deliveries, fallback error.
# The move and the XACK are one step, in the partition's slot.
_MOVE: Final = """
local rows = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local err = redis.call('HGET', KEYS[3], ARGV[2]) or ARGV[4]
local fields = {'orig', ARGV[2], 'deliveries', ARGV[3], 'error', err}
if #rows > 0 then
  for _, v in ipairs(rows[1][2]) do fields[#fields + 1] = v end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""


class DeadLetters:
    """The only code that writes `dlq:` streams and `fanout-errors:` hashes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._move = redis.register_script(_MOVE)

    async def record_errors(self, partition: int, errors: dict[bytes, str]) -> None:
        if errors:
            await self._redis.hset(keys.fanout_errors(partition), mapping=errors)

    async def move(self, partition: int, entry_id: bytes, deliveries: int, error: str) -> None:
        stream = keys.events(partition)
        await self._move(
            [stream, keys.dead_letters(partition), keys.fanout_errors(partition)],
            [keys.FANOUT_GROUP, entry_id, deliveries, error],
        )

    async def entries(self, partition: int, count: int = 100) -> list[dict[str, str]]:
        rows = await self._redis.xrange(keys.dead_letters(partition), count=count)
        return [
            {"id": rid.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}
            for rid, fields in rows
        ]
