"""Any event ingest accepts, whatever its ids hold, yields inbox pages (GET /v1/me/notifications)
and change frames (live, as published, and replayed) that parse as JSON and carry every id back
unchanged: on a real redis-server, through the real API and a fan-out drain."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import changelog
from notifier.api.app import api_app
from notifier.api.pressure import Pressure
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime import tokens
from schemas import keys, protocol
from schemas.cursor import START
from schemas.events import is_id
from tests.conftest import SERVICE_KEYS, SettingsFactory

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

AT = "2026-01-01T12:00:00Z"
# ids near the contract's edge: valid ones, and ones with a final newline, quotes, escapes, Unicode
IDS = (
    st.from_regex(r"[A-Za-z0-9_.:@-]{1,12}", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9_.:@-]{1,8}", fullmatch=True).map(lambda s: s + "\n")
    | st.text(
        st.sampled_from(['"', "\\", "\n", "é", "²", "a", ":", "@", "\x00", "/"]), min_size=1, max_size=6
    )
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["like", "follow", "comment", "mention"]))
    event: dict[str, Any] = {"type": kind, "id": draw(IDS), "actor": draw(IDS), "occurred_at": AT}
    if kind == "follow":
        event["user"] = draw(IDS)
    elif kind == "mention":
        event |= {"post": draw(IDS), "users": draw(st.lists(IDS, min_size=1, max_size=2))}
        event |= {"comment": draw(IDS)} if draw(st.booleans()) else {}
    else:
        event |= {"post": draw(IDS), "owner": draw(IDS)}
        event |= {"comment": draw(IDS), "text": draw(st.text(max_size=20))} if kind == "comment" else {}
    return event


def recipients(event: dict[str, Any]) -> set[str]:
    named = event.get("users") or [event.get("owner") or event.get("user")]
    return {u for u in named if u != event["actor"]}


def ids_of(event: dict[str, Any]) -> set[str]:
    return {event["actor"], *(event[f] for f in ("post", "comment") if event.get(f))}


def ids_in(group: dict[str, Any]) -> set[str]:
    return {*group["actors"], *(group[f] for f in ("post", "comment") if f in group)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(events(), min_size=1, max_size=4))
async def test_accepted_events_give_json_pages_and_frames_that_round_trip_every_id(
    redis_url: str, settings_factory: SettingsFactory, batch: list[dict[str, Any]]
) -> None:
    settings = settings_factory()
    redis = Redis.from_url(redis_url)
    await redis.flushall()
    try:
        app = api_app(settings, redis, Pressure(redis, settings.ingest))
        headers = {"Authorization": f"Bearer {SERVICE_KEYS['posts']}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            response = await client.post("/v1/events", content=json.dumps(batch), headers=headers)
            assert response.status_code < 500, response.text
            results = response.json()["results"]
            accepted = [e for e, r in zip(batch, results, strict=True) if r["status"] == "accepted"]
            for event in accepted:  # what ingest takes is what the contract allows
                assert all(is_id(i) for i in ids_of(event) | recipients(event)), event
            users = set().union(*(recipients(e) for e in accepted))
            pubsub = redis.pubsub()
            if users:
                await pubsub.subscribe(*(keys.user_channel(u) for u in users))
                for _ in users:  # confirmed: live from here
                    confirmed = await pubsub.get_message(timeout=5)
                    assert confirmed is not None and confirmed["type"] == "subscribe"
            worker = FanoutWorker(
                redis,
                settings.fanout,
                partitions=settings.ingest.partitions,
                limits=settings.feeds,
                consumer="w",
            )
            await worker.drain()
            seen: set[str] = set()
            logged = 0
            for user in users:
                token = tokens.issue(settings.auth, user)
                page = await client.get("/v1/me/notifications", headers={"Authorization": f"Bearer {token}"})
                assert page.status_code == 200, page.text
                for group in page.json()["groups"]:
                    seen |= ids_in(group)
                start = START
                replay = await changelog.read_after(redis, user, start, 1_000)
                assert isinstance(replay, changelog.Replay)
                logged += len(replay.changes)
                for change in replay.changes:
                    orjson.loads(protocol.change(str(change.cursor), change.payload.decode()))
            for _ in range(logged):  # every logged change was published: read them all
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                assert message is not None
                live = changelog.published(message["data"].decode())
                frame = orjson.loads(protocol.change(str(live.cursor), live.payload))
                if frame["change"]["op"] == "upsert":
                    seen |= ids_in(frame["change"]["group"])
            for event in accepted:
                if recipients(event):
                    assert ids_of(event) <= seen, (event, seen)
            await pubsub.aclose()
    finally:
        await redis.aclose()
