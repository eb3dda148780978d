"""The client REST API over real HTTP: tokens are checked, users are isolated, and marking read
lowers the badge and is pushed to the user's open WebSocket."""

from __future__ import annotations

import jwt
import pytest
from redis.asyncio import Redis

from notifier.runtime import tokens
from notifier.runtime.settings import Settings

from .harness import App, Json, follow, like, push_client, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def seed(app: App) -> None:
    await app.accept(
        like("s-1", "fan1", "post-1", "vic"),
        like("s-2", "fan2", "post-2", "vic", t=1),
        follow("s-3", "fan3", "vic", t=2),
        like("s-4", "fan1", "post-9", "wes", t=3),
    )
    await app.worker.drain()


async def test_notifications_need_a_valid_unexpired_token(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await seed(app)
        forged = jwt.encode(
            {"sub": "vic", "aud": "notifier", "exp": 9_999_999_999}, "x" * 40, algorithm="HS256"
        )
        expired = tokens.issue(settings.auth, "vic", ttl_s=-60)
        cases = [
            ({}, "unauthorized"),
            ({"Authorization": "Basic dmljOnB3"}, "unauthorized"),
            (bearer("not.a.jwt"), "unauthorized"),
            (bearer(forged), "unauthorized"),
            (bearer(expired), "token_expired"),
        ]
        for path in ("/v1/me/notifications", "/v1/me/unread"):
            for headers, reason in cases:
                response = await app.http.get(path, headers=headers)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.json()["error"] == reason
        response = await app.http.post(
            "/v1/me/notifications/read", json={"all": True}, headers=bearer(expired)
        )
        assert response.status_code == 401
        assert (await app.me("vic", "/v1/me/unread"))["unread"] == 3


async def test_a_user_sees_and_marks_only_their_own_notifications(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await seed(app)
        vic = await app.me("vic")
        wes = await app.me("wes")
        assert sorted(g.get("post", "-") for g in vic["groups"]) == ["-", "post-1", "post-2"]
        assert [g["post"] for g in wes["groups"]] == ["post-9"]
        assert (vic["unread"], wes["unread"]) == (3, 1)

        # wes names vic's groups: nothing of vic's changes
        ids = [g["id"] for g in vic["groups"]]
        response = await app.http.post(
            "/v1/me/notifications/read", json={"ids": ids}, headers=bearer(app.token("wes"))
        )
        assert response.status_code == 200
        assert response.json() == {"marked": 0, "unread": 1}
        assert await app.me("vic") == vic
        # what no group id can be is refused, not ignored
        response = await app.http.post(
            "/v1/me/notifications/read", json={"ids": ["bad id"]}, headers=bearer(app.token("wes"))
        )
        assert (response.status_code, response.json()["pointer"]) == (422, "/ids/0"), response.text


async def test_marking_read_lowers_unread_and_is_pushed(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await seed(app)
        page = await app.me("vic")
        newest, *rest = page["groups"]
        async with push_client(app, "vic", cursor=page["cursor"]) as client:
            assert client.before_ready == []  # the page's cursor is up to date

            response = await app.http.post(
                "/v1/me/notifications/read", json={"ids": [newest["id"]]}, headers=bearer(app.token("vic"))
            )
            assert response.json() == {"marked": 1, "unread": 2}
            pushed: Json = (await client.change())["change"]
            assert pushed == {"op": "read", "groups": [newest["id"]], "unread": 2, "unseen": 3}

            response = await app.http.post(
                "/v1/me/notifications/read", json={"all": True}, headers=bearer(app.token("vic"))
            )
            assert response.json() == {"marked": 2, "unread": 0}
            assert (await client.change())["change"] == {"op": "read", "all": True, "unread": 0, "unseen": 3}

            page = await app.me("vic")
            assert page["unread"] == 0
            assert all(g["read"] for g in page["groups"])
            assert [g["id"] for g in page["groups"]] == [newest["id"], *(g["id"] for g in rest)]


async def test_a_before_of_unicode_digits_is_422_and_the_connection_serves_the_next(
    redis: Redis, settings: Settings
) -> None:
    async with running_app(settings, redis) as app:
        await seed(app)
        headers = bearer(app.token("vic"))
        for _ in range(2):  # the same keep-alive connection: the first answer must not break it
            response = await app.http.get("/v1/me/notifications", params={"before": "²:x"}, headers=headers)
            assert response.status_code == 422, response.text
            assert response.json()["pointer"] == "/before"
        assert len((await app.me("vic"))["groups"]) == 3
