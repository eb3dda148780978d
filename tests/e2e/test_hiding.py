"""Mutes and seen-vs-read over real HTTP and WebSockets (uvicorn, a real worker and Redis): a
mute takes what already arrived out of the inbox on every open socket, an unmute lets through
only what happens after it, and marking seen clears the badge on all of a user's devices
without reading anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from redis.asyncio import Redis

from notifier.runtime.settings import Settings
from schemas import http

from .harness import App, follow, like, push_client, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def auth(app: App, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.token(user)}"}


async def test_a_mute_retracts_live_and_seen_syncs_every_device(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await app.accept(
            like("l-1", "ann", "p1", "olga"),
            like("l-2", "cid", "p1", "olga", 1),
            follow("f-1", "ann", "olga", 2),
        )
        await app.worker.drain()
        page = await app.me("olga")
        msgspec.convert(page, http.InboxPage)  # as the OpenAPI document says
        assert (page["unread"], page["unseen"], page["seen_at"]) == (2, 2, 0)
        async with (
            push_client(app, "olga", page["cursor"]) as phone,
            push_client(app, "olga", page["cursor"]) as laptop,
        ):
            response = await app.http.put("/v1/me/mutes/ann", headers=auth(app, "olga"))
            assert response.json() == {"changed": True, "hidden": 2}
            for device in (phone, laptop):
                changes = sorted((c["change"] for c in await device.changes(2)), key=lambda c: c["op"])
                assert [c["op"] for c in changes] == ["remove", "upsert"]
                assert changes[0]["id"].startswith("follow:")
                assert changes[1]["group"]["actors"] == ["cid"]
                assert {c["unread"] for c in changes} >= {1}

            response = await app.http.post("/v1/me/notifications/seen", headers=auth(app, "olga"))
            seen = response.json()
            assert seen["unseen"] == 0 and seen["seen_at"] > 0
            for device in (phone, laptop):
                change = (await device.change())["change"]
                assert change == {"op": "seen", "unread": 1, "unseen": 0, "seen_at": seen["seen_at"]}
        assert await app.me("olga", "/v1/me/unread") == {"unread": 1, "unseen": 0}

        assert (await app.http.delete("/v1/me/mutes/ann", headers=auth(app, "olga"))).json() == {
            "changed": True,
            "hidden": 0,
        }
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        # an activity from before the unmute stays hidden; one after it shows, unseen and unread
        await app.accept(
            like("l-3", "ann", "p1", "olga", 3), {**like("l-4", "ann", "p2", "olga"), "occurred_at": soon}
        )
        await app.worker.drain()
        page = await app.me("olga")
        assert [(g["post"], g["actors"]) for g in page["groups"]] == [("p2", ["ann"]), ("p1", ["cid"])]
        assert (page["unread"], page["unseen"]) == (2, 1)


async def test_muted_posts_are_paged_and_refused_precisely(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await app.accept(like("l-1", "ann", "p1", "olga"), like("l-2", "ann", "p2", "olga"))
        await app.worker.drain()
        response = await app.http.put("/v1/me/muted-posts/p1", headers=auth(app, "olga"))
        assert response.json() == {"changed": True, "hidden": 1}
        page = await app.me("olga", "/v1/me/muted-posts")
        msgspec.convert(page, http.MutedPostPage)
        assert ([p["id"] for p in page["posts"]], page["count"], page["next"]) == (["p1"], 1, None)
        assert [g["post"] for g in (await app.me("olga"))["groups"]] == ["p2"]
        response = await app.http.put("/v1/me/muted-posts/no%20way", headers=auth(app, "olga"))
        assert (response.status_code, response.json()["pointer"]) == (422, "/post")
        response = await app.http.post(
            "/v1/me/notifications/seen",
            content=b'{"at": -1}',
            headers={**auth(app, "olga"), "Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()["error"]) == (422, "invalid")
