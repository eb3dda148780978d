"""The checker catches what it claims to: a planted loss, duplicate, unexpected group, dead
letter and a client that missed a group are each reported (a checker that never fails proves
nothing)."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import keys
from schemas.events import decode_event

from .checker import check
from .harness import PARTITIONS, RedisProcess
from .ledger import Attempt, CommentFactory, Json, Ledger
from .observers import PushClient

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]

USER = "olga"


def test_checker_reports_every_planted_anomaly(tmp_path: Path) -> None:
    anyio.run(_planted, tmp_path)


def gid(event: Json) -> str:
    return f"comment:{event['comment']}"


async def _planted(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis", appendonly=False)
    await server.start()
    redis = Redis.from_url(server.url)
    try:
        async with httpx.AsyncClient() as http:
            factory = CommentFactory("k", [USER])
            delivered, lost, dead, doubled, unsent = (factory.make() for _ in range(5))
            ledger = Ledger()
            for event in (delivered, lost, dead, doubled):
                ledger.record(event, Attempt(0.0, 0.0, 202, "accepted", "acked"))
            limits = FeedLimits()
            inbox = Inbox(redis, limits)
            for event in (delivered, doubled, unsent):
                assert await inbox.apply(plan(decode_event(orjson.dumps(event)), limits)) == [None]
            letter = {"orig": "1-0", "deliveries": 3, "error": "boom", "e": orjson.dumps(dead)}
            await redis.xadd(keys.dead_letters(0), letter)
            # the same comment again under another event id: its group is upserted twice
            again = decode_event(orjson.dumps({**doubled, "id": doubled["id"] + "-again"}))
            assert await inbox.apply(plan(again, limits)) == [None]
            client = PushClient(USER, "ws://127.0.0.1:9/unused", http, "")
            upsert = {"op": "upsert", "group": {"id": gid(delivered)}}
            for cursor in ("e1.5-0", "e1.4-0"):  # the same group twice, the second out of order
                await client._on_frame({"type": "change", "cursor": cursor, "change": upsert})
            client.seen.add(gid(doubled))

            verdict = await check(
                redis, ledger, partitions=PARTITIONS, clients=[client], poison=[doubled["id"]]
            )
    finally:
        await redis.aclose()
        server.stop()
    assert verdict.lost == [lost["id"]]
    assert verdict.dead_lettered == [dead["id"]]
    assert verdict.good_dead_lettered == [dead["id"]]  # not the one declared poison
    assert sorted(verdict.duplicated) == [
        f"changelog {USER}:{gid(doubled)} x2",
        f"ws {USER}#0:{gid(delivered)} x2",
    ]
    assert verdict.unexpected == [f"{USER}:{gid(unsent)}"]
    assert verdict.ws_missing == {f"{USER}#0": [gid(unsent)]}
    assert verdict.ws_disorder == [f"ws {USER}#0: e1.4-0 after e1.5-0"]
    assert (verdict.acked, verdict.delivered) == (4, 2)
    assert not verdict.clean
