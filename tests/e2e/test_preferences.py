"""Preferences, mutes and blocks over real HTTP with a real worker: stored and answered as
stored, bad input refused precisely, and applied to the events ingested after them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from redis.asyncio import Redis

from notifier.runtime.settings import Settings
from schemas import http

from .harness import App, Json, follow, like, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def auth(app: App, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.token(user)}"}


async def test_preferences_are_stored_and_refused_precisely(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        assert await app.me("olga", "/v1/me/preferences") == {"off": [], "quiet_hours": None}
        wanted: Json = {
            "off": ["follow", "like"],
            "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "UTC"},
        }
        response = await app.http.put(
            "/v1/me/preferences", json={**wanted, "off": ["like", "follow"]}, headers=auth(app, "olga")
        )
        assert (response.status_code, response.json()) == (200, wanted)
        assert await app.me("olga", "/v1/me/preferences") == wanted
        assert await app.me("bob", "/v1/me/preferences") == {"off": [], "quiet_hours": None}
        zone = b'{"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "%s"}}'
        for body, status, reason, pointer in [
            (b'{"off": ["likes"]}', 422, "invalid", "/off/0"),
            (b'{"off": "like"}', 422, "invalid", "/off"),
            (b'{"mute": []}', 422, "invalid", "/mute"),
            (zone % b"Nowhere/Land", 422, "invalid", "/quiet_hours/timezone"),
            (zone % b"Europe", 422, "invalid", "/quiet_hours/timezone"),  # a folder of the zone database
            (b"{", 400, "malformed", None),
        ]:
            response = await app.http.put(
                "/v1/me/preferences",
                content=body,
                headers={**auth(app, "olga"), "Content-Type": "application/json"},
            )
            problem = response.json()
            assert (response.status_code, problem["error"]) == (status, reason), (body[:80], problem)
            assert problem.get("pointer") == pointer, problem
            assert "`" not in problem["detail"] and "$" not in problem["detail"], problem  # our words
        assert await app.me("olga", "/v1/me/preferences") == wanted


async def test_mutes_and_blocks_are_paged_and_applied_to_new_events(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        for user in ("ann", "bob", "cid"):
            response = await app.http.put(f"/v1/me/mutes/{user}", headers=auth(app, "olga"))
            assert response.json() == {"changed": True, "hidden": 0}
        assert (await app.http.put("/v1/me/mutes/ann", headers=auth(app, "olga"))).json() == {
            "changed": False,
            "hidden": 0,
        }
        assert (await app.http.delete("/v1/me/mutes/cid", headers=auth(app, "olga"))).json() == {
            "changed": True,
            "hidden": 0,
        }
        page = await app.me("olga", "/v1/me/mutes?limit=1")
        rest = await app.me("olga", f"/v1/me/mutes?limit=5&before={page['next']}")
        for answer in (page, rest):
            msgspec.convert(answer, http.MemberPage)  # as the OpenAPI document says
        assert sorted(u["id"] for u in page["users"] + rest["users"]) == ["ann", "bob"]
        assert (page["count"], rest["next"]) == (2, None)
        response = await app.http.put("/v1/me/blocks/olga", headers=auth(app, "olga"))
        assert (response.status_code, response.json()["pointer"]) == (422, "/user")
        # no body is taken (or `{}`): what is sent is refused, not ignored, and nothing changes
        for body, status in [(b"garbage", 422), (b'{"user": "zed"}', 422), (b"{" * 100_000, 413)]:
            refused = await app.http.put("/v1/me/mutes/zed", content=body, headers=auth(app, "olga"))
            assert refused.status_code == status, refused.text
        assert (await app.http.put("/v1/me/mutes/zed", content=b"{}", headers=auth(app, "olga"))).json()[
            "changed"
        ]
        await app.http.delete("/v1/me/mutes/zed", headers=auth(app, "olga"))
        await app.http.put("/v1/me/blocks/dan", headers=auth(app, "dan"))  # nothing to do with olga
        await app.http.put("/v1/me/blocks/olga", headers=auth(app, "eve"))  # eve blocks olga

        await app.accept(
            like("l-1", "ann", "p1", "olga"),  # muted
            follow("f-1", "bob", "olga"),  # muted
            like("l-2", "eve", "p1", "olga"),  # blocked olga
            # unmuted, and made after the unmute (what happened before it stays hidden)
            {
                **like("l-3", "cid", "p1", "olga"),
                "occurred_at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
            },
        )
        await app.worker.drain()
        groups = (await app.me("olga"))["groups"]
        assert [(g["verb"], g["actors"]) for g in groups] == [("like", ["cid"])]
        assert (await app.me("olga", "/v1/me/blocks"))["users"] == []
        assert [u["id"] for u in (await app.me("eve", "/v1/me/blocks"))["users"]] == ["olga"]
