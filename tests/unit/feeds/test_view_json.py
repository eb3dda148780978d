"""The views' JSON is valid whatever an id or a text holds (lua/common.lua `jstr`): the scripts
escape every string they put in JSON, so they never rely on the events' id contract for it."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import changelog
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from schemas import protocol
from schemas.cursor import START
from schemas.events import Event
from tests.unit.builders import comment, follow, like, mention
from tests.unit.memory_redis import fake_redis

pytestmark = pytest.mark.anyio

LIMITS = FeedLimits()
OWNER = "olga"
# what JSON must escape, and what it must not mangle; never '|' or ' ', which the records and
# the log's read entries use as separators (the id contract excludes both, and ingest enforces it)
HOSTILE = st.text(
    st.sampled_from(['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "/", "é", "☃", "a", ":"]),
    min_size=1,
    max_size=6,
)


def hostile_events(a: str, b: str, c: str) -> list[Event]:
    """Events built without validation (struct constructors do not check the contract)."""
    return [
        like(a, post=b),
        like(c, post=b, t=1),
        follow(b),
        comment(a, comment_id=c, post=b, text=c),
        msgspec.structs.replace(mention(c, (OWNER,), post=a, t=3), text=b),
    ]


def parsed_frames(changes: list[changelog.Change]) -> list[dict[str, Any]]:
    frames = [orjson.loads(protocol.change(str(c.cursor), c.payload.decode())) for c in changes]
    return [f["change"] for f in frames]


@settings(max_examples=40, deadline=None)
@given(HOSTILE, HOSTILE, HOSTILE)
async def test_pages_and_changes_are_json_and_round_trip_hostile_ids(a: str, b: str, c: str) -> None:
    redis = fake_redis()
    try:
        inbox = Inbox(redis, LIMITS)
        ops = [op for event in hostile_events(a, b, c) for op in plan(event, LIMITS)]
        assert await inbox.apply(ops) == [None] * len(ops)
        page = await inbox.page(OWNER, None, 100)
        groups = [orjson.loads(g) for g in page.groups]
        seen = {g["id"] for g in groups}
        for group in groups:
            seen |= {group.get("post"), group.get("comment"), group.get("text"), *group["actors"]}
        assert {a, b, c} <= seen
        read = await inbox.mark_read(OWNER, [g["id"] for g in groups])
        assert read == len(groups)
        replay = await changelog.read_after(redis, OWNER, START, 1_000)
        assert isinstance(replay, changelog.Replay)
        changes = parsed_frames(replay.changes)
        upserted = {ch["group"]["id"] for ch in changes if ch["op"] == "upsert"}
        assert upserted == {g["id"] for g in groups}
        assert sorted(changes[-1]["groups"]) == sorted(g["id"] for g in groups)
    finally:
        await redis.aclose()
