"""Every refusal of every route is an RFC 9457 problem (application/problem+json), Starlette's own
404 and 405 included, with no library jargon in `detail`."""

from __future__ import annotations

import anyio
import httpx
import jwt
import orjson
import pytest
from redis.asyncio import Redis

from loadtest.cluster import ClusterLab
from notifier.runtime import httpguard
from notifier.runtime.settings import Settings
from tests.conftest import SERVICE_KEYS, SettingsFactory

from .harness import Json, like, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def problem(response: httpx.Response, status: int, reason: str) -> Json:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: Json = response.json()
    assert body["type"] == f"urn:notifier:problem:{reason}"
    assert (body["status"], body["error"]) == (status, reason)
    assert body["title"] and body["detail"]
    return body


async def test_unknown_paths_and_wrong_methods(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        missing = problem(await app.http.get("/v1/nowhere"), 404, "not_found")
        assert missing["detail"] == "nothing at /v1/nowhere"
        for method, path, allowed in [
            ("GET", "/v1/events", "POST"),
            ("DELETE", "/v1/me/unread", "GET, HEAD"),
            ("PUT", "/v1/moderation/items", "GET, HEAD"),
        ]:
            response = await app.http.request(method, path)
            body = problem(response, 405, "method_not_allowed")
            assert response.headers["allow"] == allowed
            assert body["detail"] == f"{method} is not allowed on {path} (allowed: {allowed})"


async def test_token_refusals_say_what_is_wrong(redis: Redis, settings: Settings) -> None:
    claims = {"sub": "vic", "aud": "notifier", "exp": 9_999_999_999}
    cases = [
        (
            jwt.encode(claims, "x" * 40, algorithm="HS256"),
            "token not signed by this deployment (wrong secret)",
        ),
        ("not.a.jwt", "token is not a JWT"),
        (
            jwt.encode({**claims, "aud": "other"}, settings.auth.jwt_secret),
            "token is meant for another audience",
        ),
        (jwt.encode({"sub": "vic", "aud": "notifier"}, settings.auth.jwt_secret), "token has no 'exp' claim"),
    ]
    async with running_app(settings, redis) as app:
        for token, detail in cases:
            response = await app.http.get("/v1/me/unread", headers={"Authorization": f"Bearer {token}"})
            assert problem(response, 401, "unauthorized")["detail"] == detail
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_body_errors_are_in_product_words(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        headers = {"Authorization": f"Bearer {app.token('vic')}", "Content-Type": "application/json"}
        bad = await app.http.post("/v1/me/notifications/read", content=b'{"ids": [1]}', headers=headers)
        body = problem(bad, 422, "invalid")
        assert (body["detail"], body["pointer"]) == ("ids[0] must be a string, not an integer", "/ids/0")
        broken = await app.http.post("/v1/me/notifications/read", content=b'{"ids": [', headers=headers)
        assert problem(broken, 400, "malformed")["detail"] == "body is not valid JSON: it ends too early"


async def test_plain_http_to_the_websocket_path_is_malformed_not_a_json_error(
    redis: Redis, settings: Settings
) -> None:
    async with running_app(settings, redis) as app:
        body = problem(await app.http.get("/v1/ws"), 400, "malformed")
        assert body["detail"] == "/v1/ws takes WebSocket connections only (Upgrade: websocket)"
        assert body["title"] == "Malformed request"  # not "body is not valid JSON": it has none


async def _set_maxmemory(backend: str, redis_url: str, lab: ClusterLab, value: int) -> None:
    urls = [f"redis://127.0.0.1:{n.port}/0" for n in lab.masters()] if backend == "cluster" else [redis_url]
    for url in urls:
        node = Redis.from_url(url)
        try:
            await node.config_set("maxmemory", value)
        finally:
            await node.aclose()


async def test_writes_at_maxmemory_are_503_unavailable_not_500(
    redis: Redis, settings: Settings, backend: str, redis_url: str, redis_cluster: ClusterLab
) -> None:
    """Redis at maxmemory refuses writes (OOM): every route answers 503 with Retry-After, as
    ingest does, not a 500 with a traceback; the connection stays usable."""
    async with running_app(settings, redis) as app:
        headers = {"Authorization": f"Bearer {app.token('vic')}", "Content-Type": "application/json"}
        await _set_maxmemory(backend, redis_url, redis_cluster, 1)
        try:
            refused = await app.http.put("/v1/me/preferences", content=b'{"off": ["like"]}', headers=headers)
            body = problem(refused, 503, "unavailable")
            assert "maxmemory" in body["detail"] and refused.headers["retry-after"] == "1"
            muted = await app.http.put("/v1/me/mutes/zed", headers=headers)
            problem(muted, 503, "unavailable")
        finally:
            await _set_maxmemory(backend, redis_url, redis_cluster, 0)
        again = await app.http.put("/v1/me/preferences", content=b'{"off": ["like"]}', headers=headers)
        assert again.status_code == 200, again.text


async def test_a_stalled_body_gives_back_its_ingest_slot(
    redis: Redis, settings_factory: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service whose body never arrives held its slot of the in-flight bound for as long as
    it kept the connection: a few such stalls answered every service 503 overloaded."""
    monkeypatch.setattr(httpguard.GuardedHttpToolsProtocol, "body_timeout_s", 0.5)
    settings = settings_factory({"NOTIFIER_INGEST_MAX_IN_FLIGHT": "2"})
    async with running_app(settings, redis) as app:
        port = int(app.base_url.rsplit(":", 1)[1])
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SERVICE_KEYS['posts']}\r\n"
            'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ty'
        ).encode()
        stalled = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(2)]
        try:
            for stream in stalled:
                await stream.send(head)
            with anyio.fail_after(10):
                while True:  # the two slots are freed once their bodies time out
                    response = await app.http.post(
                        "/v1/events",
                        content=orjson.dumps(like("stall-1", "fan", "p1", "vic")),
                        headers={
                            "Authorization": f"Bearer {SERVICE_KEYS['posts']}",
                            "Content-Type": "application/json",
                        },
                    )
                    if response.status_code != 503:
                        break
                    await anyio.sleep(0.1)
            assert response.status_code == 202, response.text
        finally:
            for stream in stalled:
                await stream.aclose()
