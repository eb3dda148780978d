"""The lean pipeline (feeds/scripts.py) against a real redis-server. Its reply reading uses
redis-py's private hiredis parser (`_AsyncHiredisParser`, its `_reader`, `read_from_socket`):
this test fails when an upgrade of redis-py moves them, or when the pipeline quietly falls back to
redis-py's per-reply `read_response`."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from feeds.scripts import run_checked, run_commands

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_replies_are_parsed_by_hiredis_off_the_connection_errors_as_values(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def per_reply(self: Connection, *args: object, **kwargs: object) -> object:
        raise AssertionError("the lean pipeline read a reply through redis-py's read_response")

    monkeypatch.setattr(Connection, "read_response", per_reply)
    big = b"x" * 200_000  # several socket reads per reply: the reader is refilled when it runs dry
    await run_commands(redis, [], [("SET", f"k{i}", big) for i in range(20)])
    replies = await run_commands(
        redis, [], [*(("GET", f"k{i}") for i in range(20)), ("HGET", "k0", "f"), ("INCR", "n")]
    )
    assert replies[:20] == [big] * 20
    assert isinstance(replies[20], ResponseError) and "WRONGTYPE" in str(replies[20])
    assert replies[21] == 1
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await run_checked(redis, [("INCR", "n"), ("LLEN", "k1")])
    assert await run_checked(redis, [("INCR", "n")]) == [3]  # the connection is still in step
