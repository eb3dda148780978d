"""Ingest edge helpers (body, batch split, per-event verdicts) and the idempotent event-log append."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import anyio
import msgspec
import orjson
import pytest
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.types import Message

from feeds import scripts
from notifier.api import append as append_module
from notifier.api.append import EventLog
from notifier.api.ingest import check_event, read_body, require_json, split_batch
from notifier.runtime.eventlog import decode_entry, partition_of
from notifier.runtime.settings import IngestSettings, ServiceKey
from schemas import keys, layouts
from schemas.errors import Reason, Rejected
from schemas.events import TYPE_NAMES, Event, Like, encode_event
from tests.unit.builders import comment, follow, like

SETTINGS = IngestSettings(max_clock_skew_s=300)
EVERYTHING = ServiceKey("posts", "posts-key-0123456789", TYPE_NAMES)
LIKES_ONLY = ServiceKey("likes", "likes-key-0123456789", frozenset({"like"}))
NOW_MS = like("bob").at_ms


def rejected(reason: Reason) -> pytest.RaisesExc[Rejected]:
    return pytest.raises(Rejected, match=f"^{reason.value}: ")


# -- body --------------------------------------------------------------------------------


def request(chunks: Sequence[bytes], headers: dict[str, str]) -> Request:
    pending = list(chunks)

    async def receive() -> Message:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/v1/events", "headers": raw_headers}, receive)


@pytest.mark.anyio
async def test_read_body_joins_the_chunks() -> None:
    body = await read_body(request([b'{"a":', b" 1}"], {}), limit=8)
    assert body == b'{"a": 1}'


@pytest.mark.anyio
@pytest.mark.parametrize("declared", ["9", "-1", "ten", "1e3", "²", "٣"])
async def test_a_declared_length_over_the_limit_or_unreadable_is_refused(declared: str) -> None:
    with rejected(Reason.TOO_LARGE):
        await read_body(request([b"{}"], {"content-length": declared}), limit=8)


@pytest.mark.anyio
async def test_a_body_growing_past_the_limit_is_refused() -> None:
    with rejected(Reason.TOO_LARGE):
        await read_body(request([b"12345", b"6789"], {}), limit=8)


@pytest.mark.parametrize("media", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
def test_json_media_types_are_accepted(media: str) -> None:
    require_json(request([], {"content-type": media}))


@pytest.mark.parametrize(
    "headers", [{}, {"content-type": "text/plain"}, {"content-type": "application/jsonx"}]
)
def test_other_media_types_are_refused(headers: dict[str, str]) -> None:
    with rejected(Reason.UNSUPPORTED_MEDIA_TYPE):
        require_json(request([], headers))


# -- batch split -------------------------------------------------------------------------


def test_a_single_event_object() -> None:
    raws, batched = split_batch(b'  {"type": "like"} ', 10)
    assert (batched, [bytes(r) for r in raws]) == (False, [b'{"type": "like"}'])


def test_an_array_of_events_keeps_each_raw() -> None:
    raws, batched = split_batch(b' [{"a": 1}, {"b": [2]}, 3]', 10)
    assert batched
    assert [bytes(r) for r in raws] == [b'{"a": 1}', b'{"b": [2]}', b"3"]


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[{}", b"not json", b"{} {}", b"[1,]", DEEP, b'{"type": "like", "x": ' + DEEP + b"}"]
)
def test_invalid_json_is_malformed(body: bytes) -> None:
    with rejected(Reason.MALFORMED):
        split_batch(body, 10)


@pytest.mark.parametrize("body", [b"[]", b"1", b'"like"', b"null"])
def test_empty_batches_and_non_objects_are_invalid(body: bytes) -> None:
    with rejected(Reason.INVALID):
        split_batch(body, 10)


def test_batches_are_capped() -> None:
    assert len(split_batch(b"[{}, {}, {}]", 3)[0]) == 3
    with rejected(Reason.TOO_LARGE):
        split_batch(b"[{}, {}, {}, {}]", 3)


# -- per-event verdicts ------------------------------------------------------------------


def check(value: object, service: ServiceKey = EVERYTHING, pointer: str = "/0") -> Rejected | Event:
    event, error = check_event(msgspec.Raw(orjson.dumps(value)), pointer, service, SETTINGS, NOW_MS)
    assert (event is None) != (error is None)
    return event if event is not None else error  # type: ignore[return-value]


def as_json(event: Event) -> dict[str, object]:
    value: dict[str, object] = orjson.loads(encode_event(event))
    return value


def test_a_valid_event_is_decoded() -> None:
    assert check(as_json(like("bob"))) == like("bob")


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"actor": "a b"}, "/3/actor"),
        ({"occurred_at": "2024-05-01T12:00:00"}, "/3/occurred_at"),
        ({"extra": 1}, "/3/extra"),
        ({"ex\ntra/~": 1}, "/3/ex\ntra~1~0"),  # a producer's field name may hold anything
        ({"type": "poke"}, "/3/type"),
    ],
)
def test_contract_violations_are_invalid_with_a_pointer(change: dict[str, object], pointer: str) -> None:
    error = check(as_json(like("bob")) | change, pointer="/3")
    assert isinstance(error, Rejected)
    assert (error.reason, error.pointer) == (Reason.INVALID, pointer)


def test_a_missing_field_is_pointed_at() -> None:
    body = as_json(like("bob"))
    del body["owner"]
    missing = check(body, pointer="")
    assert isinstance(missing, Rejected)
    assert (missing.reason, missing.pointer) == (Reason.INVALID, "/owner")


def test_a_mention_list_item_is_pointed_at() -> None:
    value = {"type": "mention", "id": "m1", "actor": "bob", "occurred_at": "2024-05-01T12:00:00Z"}
    error = check(value | {"post": "p1", "users": ["ok", "not ok"]})
    assert isinstance(error, Rejected) and error.pointer == "/0/users/1"


def test_a_service_may_send_only_its_event_types() -> None:
    assert check(as_json(like("bob")), LIKES_ONLY) == like("bob")
    error = check(as_json(follow("bob")), LIKES_ONLY)
    assert isinstance(error, Rejected)
    assert (error.reason, error.pointer) == (Reason.FORBIDDEN, "/0/type")


def test_events_too_far_in_the_future_are_refused() -> None:
    assert isinstance(check(as_json(like("bob", t=300))), Like)
    error = check(as_json(like("bob", t=301)))
    assert isinstance(error, Rejected)
    assert (error.reason, error.pointer) == (Reason.INVALID, "/0/occurred_at")
    assert isinstance(check(as_json(like("bob", t=-7 * 86_400))), Like)  # the past is fine...


def test_events_older_than_the_lateness_bound_are_too_late() -> None:
    """... up to the lateness bound, which the views' horizon is built on (feeds/horizon.py)."""
    error = check(as_json(like("bob", t=-7 * 86_400 - 0.001)))
    assert isinstance(error, Rejected)
    assert (error.reason, error.pointer, error.http_status) == (Reason.TOO_LATE, "/0/occurred_at", 422)
    unbounded = IngestSettings(max_lateness_s=0)
    event, refused = check_event(
        msgspec.Raw(encode_event(like("bob", t=-3650 * 86_400))), "", EVERYTHING, unbounded, NOW_MS
    )
    assert (isinstance(event, Like), refused) == (True, None)


# -- the event log -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_append_accepts_then_deduplicates(redis: Redis) -> None:
    log = EventLog(redis, IngestSettings(partitions=4, dedupe_ttl_s=60))
    events: list[Event] = [like("bob"), comment("cid", "c1"), follow("dan")]
    first = await log.append(events, "posts")
    assert [a.status for a in first] == ["accepted"] * 3
    again = await log.append(events, "posts")
    assert [a.status for a in again] == ["duplicate"] * 3
    assert [a.position for a in again] == [a.position for a in first]
    stored = 0
    for event, appended in zip(events, first, strict=True):
        partition, _, entry_id = appended.position.partition("/")
        assert int(partition) == partition_of(event.actor, 4)
        [(rid, fields)] = await redis.xrange(keys.events(int(partition)), min=entry_id, max=entry_id)
        logged = decode_entry(rid, fields)
        assert (logged.event, logged.service) == (event, "posts")
        record = await redis.hget(keys.idempotency(int(partition), event.id), event.id)
        assert layouts.decode_accepted(record)[0] == entry_id  # a field of a shared hash, no TTL key
        stored += 1
    assert sum([await redis.xlen(keys.events(p)) for p in range(4)]) == stored
    assert not [e for e in events if await redis.exists(keys.dedupe(partition_of(e.actor, 4), e.id))]


@pytest.mark.anyio
async def test_a_record_of_the_former_layout_still_answers(redis: Redis) -> None:
    """An event accepted by a version that kept a `dedupe:` key per event (`ID|HEX`) is still a
    duplicate of its retry, or a conflict, for as long as that key lives."""
    log = EventLog(redis, IngestSettings(partitions=1, dedupe_ttl_s=60))
    event = like("bob", eid="e-old")
    entry = await redis.xadd(keys.events(0), {"before": "the upgrade"})
    fingerprint = hashlib.blake2b(encode_event(event), digest_size=12).hexdigest()
    await redis.set(keys.dedupe(0, "e-old"), f"{entry.decode()}|{fingerprint}", ex=60)
    [retry] = await log.append([event], "posts")
    assert (retry.status, retry.position) == ("duplicate", f"0/{entry.decode()}")
    [reused] = await log.append([like("bob", post="p2", eid="e-old")], "posts")
    assert reused.status == "conflict"
    assert await redis.xlen(keys.events(0)) == 1
    assert await log.position_of("e-old") == (0, entry.decode())


@pytest.mark.anyio
async def test_a_reused_id_with_another_body_is_a_conflict(redis: Redis) -> None:
    log = EventLog(redis, IngestSettings(partitions=1, dedupe_ttl_s=60))
    [original] = await log.append([like("bob", eid="e-1")], "posts")
    [reused] = await log.append([like("bob", post="p2", eid="e-1")], "posts")
    assert (reused.status, reused.position) == ("conflict", original.position)
    assert await redis.xlen(keys.events(0)) == 1


@pytest.mark.anyio
async def test_duplicates_within_one_batch(redis: Redis) -> None:
    log = EventLog(redis, IngestSettings(partitions=2, dedupe_ttl_s=60))
    twice = like("bob", eid="e-1")
    results = await log.append([twice, twice, like("bob", post="p9", eid="e-1")], "posts")
    assert [r.status for r in results] == ["accepted", "duplicate", "conflict"]
    assert len({r.position for r in results}) == 1
    assert await log.append([], "posts") == []


@pytest.mark.anyio
async def test_an_actors_events_share_a_partition_in_order(redis: Redis) -> None:
    log = EventLog(redis, IngestSettings(partitions=8, dedupe_ttl_s=60))
    events = [like("bob", post=f"p{i}", t=i) for i in range(5)]
    positions = [a.position for a in await log.append(events, "posts")]
    assert len({p.partition("/")[0] for p in positions}) == 1
    entries = [tuple(map(int, p.partition("/")[2].split("-"))) for p in positions]
    assert entries == sorted(entries)


@pytest.mark.anyio
async def test_concurrent_appends_share_round_trips_and_each_gets_its_own_answer(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[int] = []
    real = scripts.run_commands

    async def counted(redis: Redis, scripts: Any, commands: Any, *, wait: Any = None) -> list[Any]:
        trips.append(len(commands))
        await anyio.sleep(0.01)  # a round trip in flight: later callers queue behind it
        return await real(redis, scripts, commands, wait=wait)

    monkeypatch.setattr(append_module, "run_commands", counted)
    log = EventLog(redis, IngestSettings(partitions=2, dedupe_ttl_s=60))
    results: dict[int, list[str]] = {}

    async def one(i: int) -> None:
        event = like("bob", post=f"p{i % 20}", eid=f"e-{i % 20}")  # every id sent twice
        results[i] = [a.status for a in await log.append([event], "posts")]

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(one, i)
    assert sum(trips) == 40 and len(trips) < 40, trips
    statuses = sorted(s for r in results.values() for s in r)
    assert statuses == ["accepted"] * 20 + ["duplicate"] * 20
    assert sum([await redis.xlen(keys.events(p)) for p in range(2)]) == 20
