"""Ingest on a real redis-server: the same event POSTed again is a duplicate and the views end as
if it had been sent once; the endpoint (served in front of Starlette) refuses like the others."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from feeds.inbox import Inbox
from notifier.api.app import api_app
from notifier.api.pressure import Pressure
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime import metrics
from notifier.runtime.eventlog import decode_entry
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.errors import Reason

from ...conftest import SettingsFactory
from ..views import BASE_TIME, inbox_view, logged_changes

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def api(redis: Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = api_app(settings, redis, Pressure(redis, settings.ingest))
    key = next(s.key for s in settings.ingest.services if s.name == "posts")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
        yield client


LIKE = {
    "type": "like",
    "id": "evt-1",
    "actor": "ola",
    "occurred_at": BASE_TIME.isoformat(),
    "post": "post-1",
    "owner": "pia",
}


async def test_the_same_event_posted_three_times_is_accepted_once(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    statuses = []
    positions = set()
    for _ in range(3):
        response = await api.post("/v1/events", content=orjson.dumps(LIKE))
        assert response.status_code == 202, response.text
        [result] = response.json()["results"]
        statuses.append(result["status"])
        positions.add(result["position"])
    assert statuses == ["accepted", "duplicate", "duplicate"]
    assert len(positions) == 1  # every answer names the one log entry
    lengths = [await redis.xlen(keys.events(p)) for p in range(settings.ingest.partitions)]
    assert sum(lengths) == 1

    worker = FanoutWorker(
        redis, settings.fanout, partitions=settings.ingest.partitions, limits=settings.feeds, consumer="w"
    )
    assert await worker.drain() == 1
    groups, unread, _ = await inbox_view(Inbox(redis, settings.feeds), "pia")
    assert [(g["verb"], g["count"], g["actors"]) for g in groups] == [("like", 1, ["ola"])]
    assert unread == 1
    assert len(await logged_changes(redis, "pia")) == 1


async def test_a_batch_repeating_an_event_gets_one_verdict_each(api: httpx.AsyncClient, redis: Redis) -> None:
    second = {**LIKE, "id": "evt-2", "actor": "quin"}
    response = await api.post("/v1/events", content=orjson.dumps([LIKE, second, LIKE]))
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 1, 0)
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "duplicate"]
    assert body["results"][0]["position"] == body["results"][2]["position"]


async def test_only_post_is_served_on_the_ingest_path(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/events")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_ingest_without_storage_is_503_with_a_retry_hint(settings: Settings) -> None:
    """Ingest is served in front of Starlette (api_app): its refusals are the same problems."""
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = Redis(port=closed.getsockname()[1], socket_connect_timeout=1)
    app = api_app(settings, dead, Pressure(dead, settings.ingest))
    key = next(s.key for s in settings.ingest.services if s.name == "posts")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        response = await client.post("/v1/events", json=LIKE, headers=headers)
        refused = await client.post("/v1/events", json=LIKE)
    await dead.aclose()
    assert (response.status_code, response.json()["error"], response.headers["retry-after"]) == (
        503,
        "unavailable",
        "1",
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")


async def test_an_append_redis_refuses_answers_503_not_500(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    # an error reply of the append script (here WRONGTYPE: the partition's log is not a stream;
    # in production a promoted replica without the script, READONLY, NOPERM): nothing accepted
    for p in range(settings.ingest.partitions):
        await redis.set(keys.events(p), "not a stream")
    response = await api.post("/v1/events", content=orjson.dumps(LIKE))
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"
    assert response.headers["retry-after"]


async def test_a_requests_events_of_one_partition_are_one_append(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    """One script call per partition: a reader blocked on the partition wakes once, with all of
    the request's events there, in the request's order; each event keeps its own verdict (a
    conflict within the same call included)."""
    from notifier.runtime.eventlog import partition_of

    actors = [f"actor-{i}" for i in range(40)]
    parts = [partition_of(a, settings.ingest.partitions) for a in actors]
    busiest = max(set(parts), key=parts.count)
    mine = [a for a, p in zip(actors, parts, strict=True) if p == busiest][:4]
    other = next(a for a, p in zip(actors, parts, strict=True) if p != busiest)
    assert len(mine) >= 3
    events = [{**LIKE, "id": f"e-{a}", "actor": a} for a in [mine[0], other, *mine[1:]]]
    events.append({**events[0], "post": "another-post"})  # the same id, another body: a conflict
    stream = keys.events(busiest)
    await redis.xadd(stream, {"e": "x"})  # something to read past
    last = (await redis.xrevrange(stream, count=1))[0][0]

    async def first_read() -> list[bytes]:
        (_, entries), *_ = await redis.xread({stream: last}, block=5_000)
        return [decode_entry(entry_id, fields).event.id.encode() for entry_id, fields in entries]

    async with anyio.create_task_group() as tg:
        read: list[list[bytes]] = []

        async def reader() -> None:
            read.append(await first_read())

        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        response = await api.post("/v1/events", content=orjson.dumps(events))
    assert response.status_code == 202, response.text
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted"] * (len(events) - 1) + ["rejected"]
    assert response.json()["results"][-1]["error"] == Reason.CONFLICT.value
    assert read == [[f"e-{a}".encode() for a in mine]]


async def test_a_conflict_in_a_batch_points_at_its_events_id(api: httpx.AsyncClient) -> None:
    """Like every per-event refusal, a conflict names where it is: `/N/id` in a batch."""
    first = {**LIKE, "id": "e-conflict"}
    response = await api.post("/v1/events", content=orjson.dumps([first, {**first, "post": "another"}]))
    assert response.status_code == 202, response.text
    accepted, conflict = response.json()["results"]
    assert accepted["status"] == "accepted"
    assert (conflict["error"], conflict["pointer"]) == (Reason.CONFLICT.value, "/1/id")
    alone = await api.post("/v1/events", content=orjson.dumps({**first, "post": "yet-another"}))
    assert (alone.status_code, alone.json()["pointer"]) == (422, "/id")


async def test_an_id_is_remembered_in_its_actors_partition(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    """The dedupe record sits in the actor's partition (one atomic step with the append): the
    same id from an actor of another partition is another event, as the README says; from the
    same actor with another body it is a conflict."""
    from notifier.runtime.eventlog import partition_of

    actors = [f"ac-{i}" for i in range(40)]
    ann = actors[0]
    elsewhere = next(a for a in actors if partition_of(a, 4) != partition_of(ann, 4))
    assert settings.ingest.partitions == 4
    events = [{**LIKE, "id": "e-shared", "actor": ann}, {**LIKE, "id": "e-shared", "actor": elsewhere}]
    response = await api.post("/v1/events", content=orjson.dumps(events))
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted"]
    again = await api.post("/v1/events", content=orjson.dumps([*events, {**events[0], "post": "other"}]))
    statuses = [r["status"] for r in again.json()["results"]]
    assert statuses == ["duplicate", "duplicate", "rejected"], again.text


async def test_an_append_that_times_out_is_a_counted_redis_error(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    """A frozen Redis, the usual case of a timeout, cancels the append's round trip: that is a
    failed round trip of `ingest append` (notifier_redis_errors_total), not a silent one."""
    counted = metrics.Metrics()
    metrics.use(counted)
    settings = settings_factory({"NOTIFIER_INGEST_TIMEOUT_S": "0.3"})
    app = api_app(settings, redis, Pressure(redis, settings.ingest))
    key = next(s.key for s in settings.ingest.services if s.name == "posts")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    await redis.execute_command("CLIENT", "PAUSE", "2000", "WRITE")
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            response = await client.post("/v1/events", json=LIKE, headers=headers)
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")
    assert (response.status_code, response.json()["error"]) == (503, "unavailable"), response.text
    errors = counted.registry.get_sample_value("notifier_redis_errors_total", {"component": "ingest append"})
    assert errors == 1
