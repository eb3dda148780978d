"""The gateway hub's own link to Redis: a frozen server is noticed by the keepalive (there is no
timeout per read), the hub reconnects, resyncs its sessions and delivers again."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from feeds import changelog
from gateway.hub import Hub
from schemas import keys
from schemas.cursor import START, Cursor

from .harness import RedisProcess, wait_until

pytestmark = pytest.mark.faults


class Recorder:
    def __init__(self) -> None:
        self.pushed: list[tuple[Cursor, str]] = []  # cursor, payload
        self.resyncs = 0
        self.expires_at = math.inf
        self.cursor = START  # the hub's position check is off here

    def expire(self) -> None:
        raise AssertionError("never expires")

    def push_nowait(self, change: changelog.Live) -> None:
        self.pushed.append((change.cursor, change.payload))

    def resync(self) -> None:
        self.resyncs += 1


def test_frozen_redis_is_detected_by_the_keepalive_and_the_hub_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    anyio.run(_frozen, tmp_path, caplog)


async def _frozen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisProcess(tmp_path / "redis", appendonly=False)
    await server.start()
    redis = Redis.from_url(server.url, socket_timeout=2.0, socket_connect_timeout=1.0)
    publisher = Redis.from_url(server.url, socket_timeout=2.0)
    hub = Hub(redis, keepalive_s=0.2)
    alice = Recorder()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            await hub.register("alice", alice)
            await publisher.publish(keys.user_channel("alice"), "e1 1 7 {}")
            await wait_until(lambda: len(alice.pushed) == 1, 5, what="first push")
            # a change as a worker of an earlier version published it: the session re-reads the log
            await publisher.publish(keys.user_channel("alice"), 'e1.2-0 {"op":"read","all":true}')
            await wait_until(lambda: alice.resyncs == 1, 5, what="resync on a foreign message")

            server.pause()
            await anyio.sleep(1.5)  # more than 3 keepalive periods without an answer
            server.resume()
            await wait_until(lambda: alice.resyncs == 2, 10, what="resync after the reconnect")
            await publisher.publish(keys.user_channel("alice"), "e1 2 7 {}")
            await wait_until(lambda: len(alice.pushed) == 2, 5, what="push after the reconnect")
            hub.stop()
    finally:
        await redis.aclose()
        await publisher.aclose()
        server.stop()
    assert alice.pushed == [(Cursor("e1", 1, 7), "{}"), (Cursor("e1", 2, 7), "{}")]
    assert any("silent" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
