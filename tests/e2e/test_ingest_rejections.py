"""Every way POST /v1/events refuses, over real HTTP: the documented status and reason, and
nothing added to any event-log stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from tests.conftest import SettingsFactory

from .harness import App, Json, follow, like, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

MAX_BODY_BYTES = 4096
MAX_BATCH_EVENTS = 5


@pytest.fixture
async def app(redis: Redis, settings_factory: SettingsFactory) -> AsyncIterator[App]:
    settings = settings_factory(
        {
            "NOTIFIER_INGEST_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "NOTIFIER_INGEST_MAX_BATCH_EVENTS": str(MAX_BATCH_EVENTS),
        }
    )
    async with running_app(settings, redis) as running:
        yield running


def json_headers(app: App, service: str = "posts") -> dict[str, str]:
    return {**app.service_auth(service), "Content-Type": "application/json"}


class Unchanged:
    """Asserts that no event-log stream grew while the block ran."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._before: list[int] = []

    async def __aenter__(self) -> None:
        self._before = await self._app.stream_lengths()

    async def __aexit__(self, *exc: object) -> None:
        assert await self._app.stream_lengths() == self._before


def assert_problem(response: httpx.Response, status: int, reason: str) -> Json:
    """An RFC 9457 problem with the product's reason as `error`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: Json = response.json()
    assert body["error"] == reason, body
    assert (body["type"], body["status"]) == (f"urn:notifier:problem:{reason}", status)
    assert body["title"] and body["detail"]
    return body


def assert_all_rejected(
    response: httpx.Response, status: int, reason: str, pointer: str | None = None
) -> Json:
    body = assert_problem(response, status, reason)
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (0, 0, 1), body
    assert len(body["results"]) == 1
    result: Json = body["results"][0]
    assert result["status"] == "rejected"
    assert result["error"] == reason, result
    if pointer is not None:
        assert result["pointer"] == pointer, result
    return result


async def test_service_authentication(app: App) -> None:
    body = orjson.dumps(like("a-1", "amy", "p", "bo"))
    async with Unchanged(app):
        response = await app.http.post(
            "/v1/events", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == 'Bearer realm="notifier"'
        wrong = {"Authorization": "Bearer not-a-service-key-at-all", "Content-Type": "application/json"}
        assert_problem(await app.http.post("/v1/events", content=body, headers=wrong), 401, "unauthorized")
        basic = {"Authorization": "Basic " + app.service_auth()["Authorization"][7:]}
        assert_problem(await app.http.post("/v1/events", content=body, headers=basic), 401, "unauthorized")


async def test_a_service_may_send_only_its_event_types(app: App) -> None:
    async with Unchanged(app):
        response = await app.post(follow("f-1", "amy", "bo"), service="likes")
        assert_all_rejected(response, 403, "forbidden", "/type")
    response = await app.post(like("l-1", "amy", "p", "bo"), service="likes")
    assert response.status_code == 202
    assert response.json()["accepted"] == 1


async def test_a_body_over_the_limit_is_413_declared_or_chunked(app: App) -> None:
    big = orjson.dumps([like(f"big-{i}", "amy", "p" * 100, "bo") for i in range(30)])
    assert len(big) > MAX_BODY_BYTES

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    async with Unchanged(app):
        response = await app.http.post("/v1/events", content=big, headers=json_headers(app))
        assert_problem(response, 413, "too_large")
        response = await app.http.post("/v1/events", content=chunks(), headers=json_headers(app))
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_problem(response, 413, "too_large")


async def test_a_batch_over_the_limit_is_413(app: App) -> None:
    batch = [like(f"b-{i}", "amy", "p", "bo") for i in range(MAX_BATCH_EVENTS + 1)]
    async with Unchanged(app):
        assert_problem(await app.post(batch), 413, "too_large")


async def test_content_type_and_json_are_checked(app: App) -> None:
    event = orjson.dumps(like("c-1", "amy", "p", "bo"))
    async with Unchanged(app):
        text = {**app.service_auth(), "Content-Type": "text/plain"}
        assert_problem(
            await app.http.post("/v1/events", content=event, headers=text), 415, "unsupported_media_type"
        )
        none = app.service_auth()
        assert_problem(
            await app.http.post("/v1/events", content=event, headers=none), 415, "unsupported_media_type"
        )
        for broken in (b"{", b'{"type": "like",}', b"\xff\xfe", b"[1, 2"):
            response = await app.http.post("/v1/events", content=broken, headers=json_headers(app))
            assert_problem(response, 400, "malformed")
        for neither in (b"[]", b"42", b'"like"'):
            response = await app.http.post("/v1/events", content=neither, headers=json_headers(app))
            assert_problem(response, 422, "invalid")


VALID = like("v-1", "amy", "post-1", "bo")


@pytest.mark.parametrize(
    ("event", "pointer"),
    [
        pytest.param({**VALID, "extra": 1}, "/extra", id="unknown-field"),
        pytest.param({**VALID, "id": "a{b}"}, "/id", id="bad-id-chars"),
        pytest.param({**VALID, "actor": "x" * 129}, "/actor", id="id-too-long"),
        pytest.param({k: v for k, v in VALID.items() if k != "owner"}, "/owner", id="missing-field"),
        pytest.param({**VALID, "post": 7}, "/post", id="wrong-type"),
        pytest.param({**VALID, "occurred_at": "2026-01-01T12:00:00"}, "/occurred_at", id="naive-datetime"),
        pytest.param({**VALID, "occurred_at": "2999-01-01T00:00:00Z"}, "/occurred_at", id="far-future"),
        pytest.param(
            {**VALID, "type": "comment", "comment": "c-1", "text": "x" * 2001}, "/text", id="text-too-long"
        ),
        pytest.param({**VALID, "type": "poke"}, "/type", id="unknown-type"),
        pytest.param({k: v for k, v in VALID.items() if k != "type"}, "/type", id="no-type"),
    ],
)
async def test_schema_violations_are_422_with_a_pointer(app: App, event: Json, pointer: str) -> None:
    async with Unchanged(app):
        result = assert_all_rejected(await app.post(event), 422, "invalid", pointer)
        # the product's words, not the codec's ("Expected `str`, got `int`")
        assert "`" not in result["detail"] and not result["detail"].startswith(("Expected", "Object"))
        batched = await app.post([event])
        assert_all_rejected(batched, 422, "invalid", "/0" + pointer)


async def test_an_event_id_reused_with_a_different_body_is_a_conflict(app: App) -> None:
    await app.accept(like("dup-1", "amy", "post-1", "bo"))
    async with Unchanged(app):
        result = assert_all_rejected(
            await app.post(like("dup-1", "amy", "post-2", "bo")), 422, "conflict", "/id"
        )
        assert result["id"] == "dup-1"
        again = await app.post(like("dup-1", "amy", "post-1", "bo"))
        assert again.status_code == 202
        assert [r["status"] for r in again.json()["results"]] == ["duplicate"]


async def test_a_partly_bad_batch_accepts_the_good_events(app: App) -> None:
    good = [like("g-1", "amy", "p", "bo"), follow("g-2", "amy", "bo")]
    bad = {**like("g-3", "amy", "p", "bo"), "owner": 5}
    before = sum(await app.stream_lengths())
    response = await app.post([good[0], bad, good[1], {"nope": True}])
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 2)
    results = body["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted", "rejected"]
    assert [results[0]["id"], results[2]["id"]] == ["g-1", "g-2"]
    assert (results[1]["error"], results[1]["pointer"], results[1]["id"]) == ("invalid", "/1/owner", "g-3")
    assert results[3]["error"] == "invalid"
    assert results[3]["pointer"].startswith("/3/")
    assert sum(await app.stream_lengths()) == before + 2
