"""The follow graph and timelines over real HTTP: followers, following and posts paged newest
first with counts, kept from the events as they are ingested; bad input refused precisely."""

from __future__ import annotations

import msgspec
import pytest
from redis.asyncio import Redis

from notifier.runtime.settings import Settings
from schemas import http

from .harness import App, Json, at, follow, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def unfollow(eid: str, actor: str, user: str, t: float = 0) -> Json:
    return {"type": "unfollow", "id": eid, "actor": actor, "occurred_at": at(t), "user": user}


async def every_page(app: App, path: str, limit: int) -> tuple[list[Json], int]:
    users: list[Json] = []
    query = f"?limit={limit}"
    counts = set()
    while True:
        page = await app.me("viewer", path + query)
        msgspec.convert(page, http.MemberPage)  # as the OpenAPI document says
        users += page["users"]
        counts.add(page["count"])
        if page["next"] is None:
            break
        query = f"?limit={limit}&before={page['next']}"
    assert len(counts) == 1
    return users, counts.pop()


async def test_followers_and_following_are_paged_with_counts(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await app.accept(*[follow(f"f-{i}", f"fan{i}", "star", t=i) for i in range(7)])
        await app.accept(follow("f-s", "star", "fan3", t=10), unfollow("u-2", "fan2", "star", t=20))
        await app.worker.drain()

        followers, count = await every_page(app, "/v1/users/star/followers", 2)
        assert count == 6
        assert [u["id"] for u in followers] == ["fan6", "fan5", "fan4", "fan3", "fan1", "fan0"]
        assert followers[0]["since"] > followers[-1]["since"]
        following, count = await every_page(app, "/v1/users/fan3/following", 2)
        assert (following, count) == ([{"id": "star", "since": followers[3]["since"]}], 1)
        assert await app.me("viewer", "/v1/users/star/follows") == {"followers": 6, "following": 1}
        assert await app.me("viewer", "/v1/users/nobody/follows") == {"followers": 0, "following": 0}


async def test_an_authors_posts_are_paged_and_a_deleted_one_is_gone(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        posts = [
            {"type": "post_created", "id": f"pc-{i}", "actor": "star", "occurred_at": at(i), "post": f"p{i}"}
            for i in range(5)
        ]
        gone = {"type": "post_deleted", "id": "pd-3", "actor": "star", "occurred_at": at(9), "post": "p3"}
        # the deletion first: it wins whatever the order
        await app.accept(gone)
        await app.worker.drain()
        await app.accept(*posts, {**posts[0], "id": "pc-0b", "text": "edited", "kind": "photo"})
        await app.worker.drain()
        first = await app.me("viewer", "/v1/users/star/posts?limit=2")
        rest = await app.me("viewer", f"/v1/users/star/posts?limit=10&before={first['next']}")
        shown = first["posts"] + rest["posts"]
        for answer in (first, rest):
            msgspec.convert(answer, http.PostPage)  # as the OpenAPI document says
        assert [p["id"] for p in shown] == ["p4", "p2", "p1", "p0"]
        assert (first["count"], rest["next"]) == (4, None)
        assert {k: shown[-1][k] for k in ("author", "kind", "text", "visibility")} == {
            "author": "star",
            "kind": "photo",  # the same time: the higher event id wins (last writer wins)
            "text": "edited",
            "visibility": "public",
        }


async def test_a_followers_only_post_is_shown_to_its_author_and_followers_only(
    redis: Redis, settings: Settings
) -> None:
    async with running_app(settings, redis) as app:
        post = {"type": "post_created", "actor": "star", "occurred_at": at(1)}
        await app.accept(
            {**post, "id": "pc-open", "post": "open"},
            {**post, "id": "pc-close", "post": "close", "visibility": "followers", "occurred_at": at(2)},
            follow("f-1", "fan", "star"),
        )
        await app.worker.drain()
        for viewer, shown in [
            ("star", ["close", "open"]),
            ("fan", ["close", "open"]),
            ("stranger", ["open"]),
        ]:
            page = await app.me(viewer, "/v1/users/star/posts")
            assert [p["id"] for p in page["posts"]] == shown, viewer


@pytest.mark.parametrize(
    ("path", "pointer"),
    [
        ("/v1/users/a%20b/followers", "/user"),
        ("/v1/users/star/following?limit=0", "/limit"),
        ("/v1/users/star/followers?limit=x", "/limit"),
        ("/v1/users/star/followers?limit=5&limit=6", "/limit"),
        ("/v1/users/star/followers?before=1:a&before=2:b", "/before"),
        ("/v1/users/star/followers?before=yesterday", "/before"),
        ("/v1/users/a%7Bb%7D/follows", "/user"),
        ("/v1/users/star/posts?before=1", "/before"),
    ],
)
async def test_bad_reads_are_refused_precisely(
    redis: Redis, settings: Settings, path: str, pointer: str
) -> None:
    async with running_app(settings, redis) as app:
        response = await app.http.get(path, headers={"Authorization": f"Bearer {app.token('viewer')}"})
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid"
        assert response.json()["pointer"] == pointer
        assert (await app.http.get("/v1/users/star/followers")).status_code == 401
