"""The moderator API over real HTTP (uvicorn from `notifier up`'s services) and the recall seen
by a connected WebSocket client; role checks on every route; the audit trail is read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import anyio
import msgspec
import orjson
import pytest
from redis.asyncio import Redis

from notifier.moderation import replies
from notifier.moderation.records import Stats
from notifier.runtime import tokens
from notifier.runtime.settings import Settings
from schemas import keys

from .builders import CLEAN_TEXT, FLAGGED_TEXT, HELD_TEXT, comment
from .harness import App, push_client, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROUTES: Final = [
    ("GET", "/v1/moderation/items", None),
    ("GET", "/v1/moderation/items?state=open&reason=blocklist&actor=bob", None),
    ("GET", "/v1/moderation/items/e1", None),
    ("POST", "/v1/moderation/items/e1/claim", None),
    ("POST", "/v1/moderation/items/e1/release", None),
    ("POST", "/v1/moderation/items/e1/approve", {"note": "x"}),
    ("POST", "/v1/moderation/items/e1/reject", {"note": "x"}),
    ("POST", "/v1/moderation/decisions", {"decision": "reject", "ids": ["e1"]}),
    ("GET", "/v1/moderation/bans", None),
    ("POST", "/v1/moderation/bans", {"actor": "bob", "reason": "x"}),
    ("POST", "/v1/moderation/bans/bob/lift", {"reason": "x"}),
    ("GET", "/v1/moderation/actors/bob", None),
    ("GET", "/v1/moderation/stats", None),
    ("GET", "/v1/moderation/audit", None),
    ("GET", "/v1/moderation/audit?order=newest", None),
    ("GET", "/v1/moderation/audit/verify", None),
]


@pytest.fixture
async def app(redis: Redis, settings: Settings) -> App:  # type: ignore[misc]
    async with running_app(settings, redis) as running:
        yield running


async def audit_state(redis: Redis) -> tuple[list[object], bytes | None]:
    return list(await redis.xrange(keys.audit())), await redis.get(keys.audit_head())


async def test_only_moderators_pass_on_every_route(app: App, redis: Redis) -> None:
    await app.send(comment("e1", "bob", "alice", HELD_TEXT))
    await app.wait_for_item("e1")
    await app.moderate("POST", "/v1/moderation/items/e1/approve", body={"note": "ok"})  # one audit record
    before = await audit_state(redis)
    callers = {
        401: [
            {},
            {"Authorization": "Bearer not-a-jwt"},
            {"Authorization": f"Bearer {app.forged('mallory')}"},
        ],
        403: [
            {"Authorization": f"Bearer {app.token('alice')}"},
            {"Authorization": f"Bearer {app.token('x', 'admin')}"},
        ],
    }
    for status, headers_list in callers.items():
        for headers in headers_list:
            for method, path, body in ROUTES:
                extra = {"Content-Type": "application/json"} if body is not None else {}
                response = await app.http.request(
                    method,
                    path,
                    headers={**headers, **extra},
                    json=None,
                    content=None if body is None else b"{}",
                )
                assert response.status_code == status, (method, path, headers, response.text)
                assert response.json()["error"] == ("unauthorized" if status == 401 else "forbidden")
    assert await audit_state(redis) == before
    item = (await app.moderate("GET", "/v1/moderation/items/e1")).json()["item"]
    assert item["state"] == "approved" and item["decided_by"] == "ann"


async def test_no_route_changes_or_deletes_the_audit_trail(app: App, redis: Redis) -> None:
    await app.send(comment("e1", "bob", "alice", HELD_TEXT))
    await app.wait_for_item("e1")
    await app.moderate("POST", "/v1/moderation/items/e1/reject", body={"note": "no"})
    before = await audit_state(redis)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/v1/moderation/audit", "/v1/moderation/audit/verify", "/v1/moderation/audit/1-0"):
            response = await app.moderate(method, path, body={})
            assert response.status_code in {404, 405}, (method, path)
    assert await audit_state(redis) == before
    body = (await app.moderate("GET", "/v1/moderation/audit")).json()
    assert [r["record"]["action"] for r in body["records"]] == ["reject"]
    assert (await app.moderate("GET", "/v1/moderation/audit/verify")).json()["ok"] is True
    newest = await app.moderate("GET", "/v1/moderation/audit?order=newest&after=0-0")
    assert (newest.status_code, newest.json()["records"]) == (200, [])  # was a 500 from Redis

    # someone with write access to Redis edits the record into something that is not JSON: the
    # trail still answers valid JSON (the stored text as a string), and verify says it broke
    [(entry_id, fields)] = await redis.xrange(keys.audit())
    await redis.delete(keys.audit())
    await redis.xadd(keys.audit(), {**fields, b"d": b'{"injected": '}, id=entry_id)
    tampered = await app.moderate("GET", "/v1/moderation/audit")
    assert tampered.json()["records"][0]["record"] == '{"injected": '
    assert (await app.moderate("GET", "/v1/moderation/audit/verify")).json()["ok"] is False


async def test_a_delivered_comment_rejected_later_is_recalled_from_a_connected_client(app: App) -> None:
    async with push_client(app, "alice") as alice:
        await app.send(comment("e0", "carl", "alice", CLEAN_TEXT, post="p0"))
        assert (await alice.change())["op"] == "upsert"
        await app.send(comment("e1", "bob", "alice", FLAGGED_TEXT))
        delivered = await alice.change()
        assert (delivered["op"], delivered["group"]["id"], delivered["unread"]) == (
            "upsert",
            "comment:c-e1",
            2,
        )
        item = await app.wait_for_item("e1")
        assert (item["action"], item["delivered"]) == ("flag", True)

        claimed = await app.moderate("POST", "/v1/moderation/items/e1/claim", "ann")
        assert claimed.status_code == 200 and claimed.json()["item"]["claimed_by"] == "ann"
        taken = await app.moderate("POST", "/v1/moderation/items/e1/claim", "ben")
        assert (taken.status_code, taken.json()["error"]) == (409, "claimed")
        not_theirs = await app.moderate("POST", "/v1/moderation/items/e1/release", "ben")
        assert (not_theirs.status_code, not_theirs.json()["error"]) == (409, "claimed")
        rejected = await app.moderate("POST", "/v1/moderation/items/e1/reject", "ann", {"note": "insult"})
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["effect"] == "recall|e1"

        removed = await alice.change()  # the recall job ran in `up`'s jobs service
        assert removed == {"op": "remove", "id": "comment:c-e1", "unread": 1, "unseen": 1}
    headers = {"Authorization": f"Bearer {app.token('alice')}"}
    assert (await app.http.get("/v1/me/unread", headers=headers)).json() == {"unread": 1, "unseen": 1}
    groups = (await app.http.get("/v1/me/notifications", headers=headers)).json()["groups"]
    assert [g["id"] for g in groups] == ["comment:c-e0"]
    again = await app.moderate("POST", "/v1/moderation/items/e1/reject", "ben", {"note": "again"})
    assert again.json()["changed"] is False


async def test_a_held_comment_is_delivered_once_on_approval(app: App) -> None:
    async with push_client(app, "alice") as alice:
        await app.send(
            comment("e1", "bob", "alice", HELD_TEXT), comment("e2", "carl", "alice", CLEAN_TEXT, post="p2")
        )
        first = await alice.change()
        assert first["group"]["id"] == "comment:c-e2"  # the held one did not arrive
        # bob's and carl's events may sit in different partitions: e2 can arrive before e1 is held
        assert (await app.wait_for_item("e1"))["action"] == "hold"
        approved = await app.moderate("POST", "/v1/moderation/items/e1/approve", "ann", {"note": "a quote"})
        assert approved.json()["effect"] == "deliver|e1"
        arrived = await alice.change()
        assert (arrived["op"], arrived["group"]["id"], arrived["unread"]) == ("upsert", "comment:c-e1", 2)
        repeat = await app.moderate("POST", "/v1/moderation/items/e1/approve", "ben", {})
        assert repeat.json()["changed"] is False
        # the note is optional: no body at all is a decision without one
        again = await app.moderate("POST", "/v1/moderation/items/e1/approve", "ben")
        assert (again.status_code, again.json()["changed"]) == (200, False), again.text
        unnamed = await app.moderate("POST", "/v1/moderation/bans", "ben")
        assert (unnamed.status_code, unnamed.json()["error"]) == (422, "invalid"), unnamed.text
        assert unnamed.json()["detail"] == "actor is required"


async def test_a_moderator_cannot_act_on_their_own_case(app: App) -> None:
    await app.send(comment("e1", "ann", "alice", HELD_TEXT))
    assert (await app.wait_for_item("e1"))["action"] == "hold"
    for action in ("claim", "approve", "reject"):
        own = await app.moderate("POST", f"/v1/moderation/items/e1/{action}", "ann", {})
        assert (own.status_code, own.json()["error"]) == (403, "forbidden"), (action, own.text)
    banned = await app.moderate("POST", "/v1/moderation/bans", "ben", {"actor": "ann", "reason": "abuse"})
    assert banned.status_code == 200 and banned.json()["rejected"] == ["e1"]
    lift = await app.moderate("POST", "/v1/moderation/bans/ann/lift", "ann", {"reason": "mine"})
    assert (lift.status_code, lift.json()["pointer"]) == (422, "/actor"), lift.text
    assert [b["actor"] for b in (await app.moderate("GET", "/v1/moderation/bans")).json()["bans"]] == ["ann"]


async def test_listing_bulk_decisions_and_bans(app: App) -> None:
    await app.send(
        *[comment(f"e{n}", "bob" if n < 3 else "carl", "alice", HELD_TEXT, post=f"p{n}") for n in range(5)]
    )
    for n in range(5):
        await app.wait_for_item(f"e{n}")
    page = (await app.moderate("GET", "/v1/moderation/items?state=open&limit=2")).json()
    assert len(page["items"]) == 2 and page["next"] is not None
    rest = (
        await app.moderate("GET", f"/v1/moderation/items?state=open&limit=10&after={page['next']}")
    ).json()
    assert len(rest["items"]) == 3 and rest["next"] is None
    listed = [i["id"] for i in page["items"] + rest["items"]]
    assert sorted(listed) == [f"e{n}" for n in range(5)]  # oldest first, each once
    assert [i["seq"] for i in page["items"] + rest["items"]] == sorted(
        i["seq"] for i in page["items"] + rest["items"]
    )
    by_carl = (await app.moderate("GET", "/v1/moderation/items?actor=carl")).json()
    assert [i["id"] for i in by_carl["items"]] == ["e3", "e4"]

    await app.moderate("POST", "/v1/moderation/items/e4/claim", "ben")
    bulk = await app.moderate(
        "POST",
        "/v1/moderation/decisions",
        "ann",
        {"decision": "reject", "ids": ["e3", "e4", "nope", "actor~nobody"], "note": "spam"},
    )
    assert [(r["id"], r["status"], r.get("error")) for r in bulk.json()["results"]] == [
        ("e3", "changed", None),
        ("e4", "refused", "claimed"),
        ("nope", "refused", "not_found"),
        ("actor~nobody", "refused", "not_found"),  # an actor's item id is taken (it was a 422)
    ]
    ban = await app.moderate("POST", "/v1/moderation/bans", "ann", {"actor": "bob", "reason": "harassment"})
    assert sorted(ban.json()["rejected"]) == ["e0", "e1", "e2"]
    assert [b["actor"] for b in (await app.moderate("GET", "/v1/moderation/bans")).json()["bans"]] == ["bob"]
    audit = (await app.moderate("GET", "/v1/moderation/audit?limit=100")).json()["records"]
    assert [r["record"]["action"] for r in audit] == ["reject", "ban", "reject", "reject", "reject"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/moderation/items?state=weird", None, 422),
        ("GET", "/v1/moderation/items?limit=0", None, 422),
        ("GET", "/v1/moderation/items/missing", None, 404),
        ("POST", "/v1/moderation/items/e1/approve", {"note": "x", "decided_by": "someone"}, 422),
        ("POST", "/v1/moderation/decisions", {"decision": "maybe", "ids": ["e1"]}, 422),
        ("POST", "/v1/moderation/bans", {"actor": "not an id!", "reason": "x"}, 422),
        ("POST", "/v1/moderation/bans", {"actor": "bob"}, 422),  # a ban needs a reason
        ("POST", "/v1/moderation/bans", {"actor": "bob", "reason": ""}, 422),
        ("POST", "/v1/moderation/bans", {"actor": "bob", "reason": "x", "duration_s": -1}, 422),
        ("POST", "/v1/moderation/bans/bob/lift", {"reason": "x"}, 404),  # not banned
        ("POST", "/v1/moderation/bans", {"actor": "ann", "reason": "x"}, 422),  # ann is the moderator
        ("POST", "/v1/moderation/items/e1/claim", {"until": 1}, 422),  # claim and release take no body
        ("POST", "/v1/moderation/items/e1/release", [], 422),
        ("GET", "/v1/moderation/items?order=random", None, 422),
        ("GET", "/v1/moderation/items?state=open&state=rejected", None, 422),  # which one?
        ("GET", "/v1/moderation/items?order=urgency&state=approved", None, 422),  # ranks open items
        ("GET", "/v1/moderation/items?reason=" + "x" * 5_000, None, 422),
        ("GET", "/v1/moderation/items?reason=a%00b", None, 422),
        ("GET", "/v1/moderation/audit?after=x", None, 422),
        ("GET", "/v1/moderation/audit?order=sideways", None, 422),
    ],
)
async def test_bad_requests_are_refused_with_a_reason(
    app: App, method: str, path: str, body: object, status: int
) -> None:
    response = await app.moderate(method, path, body=body)
    assert response.status_code == status, response.text
    assert set(response.json()) >= {"error", "detail"}


async def test_malformed_bodies_are_refused_as_malformed(app: App) -> None:
    headers = {**app.auth("ann"), "Content-Type": "application/json"}
    for path in ("/v1/moderation/items/e1/claim", "/v1/moderation/items/e1/approve", "/v1/moderation/bans"):
        deep = b"[" * 5_000 + b"]" * 5_000
        for body in (b"{not json", deep, b'{"note": ' + deep + b"}"):
            response = await app.http.post(path, headers=headers, content=body)
            assert response.status_code in {400, 422}, (path, response.text)
            assert response.json()["error"] in {"malformed", "invalid"}, (path, response.text)
    bare = await app.http.post("/v1/moderation/items/e1/claim", headers={**app.auth("ann")}, content=b"{}")
    assert (bare.status_code, bare.json()["error"]) == (415, "unsupported_media_type")


async def test_users_report_over_http_and_see_the_outcome(app: App) -> None:
    async with push_client(app, "alice") as alice:
        await app.send(comment("e1", "bob", "alice", CLEAN_TEXT))
        assert (await alice.change())["group"]["id"] == "comment:c-e1"
        user = {"Authorization": f"Bearer {app.token('alice')}", "Content-Type": "application/json"}
        report = {
            "target": {"kind": "notification", "id": "comment:c-e1"},
            "reason": "harassment",
            "note": "x",
        }
        first = await app.http.post("/v1/me/reports", json=report, headers=user)
        assert (first.status_code, first.json()) == (201, {"items": ["e1"], "new": True})
        msgspec.convert(first.json(), replies.ReportFiled)  # as the OpenAPI document says
        again = await app.http.post("/v1/me/reports", json=report, headers=user)
        assert (again.status_code, again.json()["new"]) == (200, False)
        refused = [
            ({**report, "reason": "dislike"}, user, 422),
            ({"target": {"kind": "post", "id": "p1"}, "reason": "spam"}, user, 422),
            ({"target": {"kind": "actor", "id": "not an id!"}, "reason": "spam"}, user, 422),
            ({"target": {"kind": "comment", "id": "c-unknown"}, "reason": "spam"}, user, 404),
            ({**report, "note": "x" * 1001}, user, 422),
            (report, {"Content-Type": "application/json"}, 401),
        ]
        for body, headers, status in refused:
            response = await app.http.post("/v1/me/reports", json=body, headers=headers)
            assert response.status_code == status, response.text
            assert set(response.json()) >= {"error", "detail"}

        viewed = await app.moderate("GET", "/v1/moderation/items/e1")
        msgspec.json.decode(viewed.content, type=replies.ItemView)  # as the OpenAPI document says
        item = viewed.json()
        assert (item["item"]["reporters"], item["item"]["reasons"]) == (1, {"harassment": 1})
        assert [(r["reporter"], r["reason"]) for r in item["reports"]] == [("alice", "harassment")]
        assert (item["recipients"], item["post"]) == (["alice"], "p1")
        listed = (await app.http.get("/v1/me/reports", headers=user)).json()
        msgspec.convert(listed, replies.MyReports)
        assert [(r["item"], r["status"]) for r in listed["reports"]] == [("e1", "open")]

        await app.moderate("POST", "/v1/moderation/items/e1/reject", "ann", {"note": "harassment"})
        assert await alice.change() == {"op": "remove", "id": "comment:c-e1", "unread": 0, "unseen": 0}
        mine = (await app.http.get("/v1/me/reports", headers=user)).json()["reports"]
        assert [(r["item"], r["status"]) for r in mine] == [("e1", "upheld")]


async def test_suspension_unban_dropped_events_and_numbers_over_http(app: App) -> None:
    suspended = await app.moderate(
        "POST", "/v1/moderation/bans", "ann", {"actor": "bob", "reason": "cool off", "duration_s": 3600}
    )
    assert suspended.status_code == 200 and suspended.json()["ban"]["until_ms"] > 0
    await app.send(comment("e1", "bob", "alice", CLEAN_TEXT), comment("e2", "carl", "alice", HELD_TEXT))
    await app.wait_for_item("e2")
    # bob's partition may be screened after carl's
    actor = await app.wait_for("/v1/moderation/actors/bob", lambda body: body["dropped"]["count"] > 0)
    assert [e["id"] for e in actor["dropped"]["events"]] == ["e1"] and actor["dropped"]["count"] == 1
    assert actor["ban"]["reason"] == "cool off"
    msgspec.convert(actor, replies.ActorView)  # as the OpenAPI document says
    assert [(e["action"], e["reason"]) for e in actor["enforcement"]] == [("suspend", "cool off")]
    stats = (await app.moderate("GET", "/v1/moderation/stats")).json()
    assert (stats["pending"], stats["held"], stats["claimed"], stats["dropped_for_bans"]) == (1, 1, 0, 1)
    assert stats["oldest_wait_s"] >= 0 and stats["oldest_open_ms"] > 0
    msgspec.convert(stats, Stats)

    lifted = await app.moderate("POST", "/v1/moderation/bans/bob/lift", "ben", {"reason": "appeal"})
    assert lifted.status_code == 200 and lifted.json()["lifted"]["actor"] == "bob"
    msgspec.convert(lifted.json(), replies.Lifted)
    assert (await app.moderate("GET", "/v1/moderation/bans")).json()["bans"] == []
    newest = (await app.moderate("GET", "/v1/moderation/audit?order=newest&limit=1")).json()["records"]
    assert [r["record"]["action"] for r in newest] == ["unban"]
    again = await app.moderate("POST", "/v1/moderation/bans/bob/lift", "ben", {"reason": "twice"})
    assert (again.status_code, again.json()["error"]) == (404, "not_found")


async def test_changes_are_pushed_to_open_consoles(app: App) -> None:
    await app.send(comment("e1", "bob", "alice", HELD_TEXT))
    await app.wait_for_item("e1")
    async with app.http.stream("GET", "/v1/moderation/live", headers=app.auth("ben")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        with anyio.fail_after(10):
            assert await anext(lines) == "event: ready"
            await app.moderate("POST", "/v1/moderation/items/e1/claim", "ann")
            data = [line async for line in _until_data(lines)]
        assert orjson.loads(data[0].removeprefix("data: ")) == {
            "kind": "item",
            "id": "e1",
            "state": "claimed",
            "claimed_by": "ann",
        }
    refused = await app.http.get(
        "/v1/moderation/live", headers={"Authorization": f"Bearer {app.token('bob')}"}
    )
    assert refused.status_code == 403


async def test_an_open_console_stream_ends_when_its_token_expires(app: App) -> None:
    """The stream was checked once, at connect: an expired moderator token kept receiving."""
    token = tokens.issue(app.settings.auth, "ben", ttl_s=1.5, role="moderator")
    async with app.http.stream(
        "GET", "/v1/moderation/live", headers={"Authorization": f"Bearer {token}"}
    ) as stream:
        lines = stream.aiter_lines()
        with anyio.fail_after(10):
            assert await anext(lines) == "event: ready"
            rest = [line async for line in lines if line]
    assert rest[-2:] == ["event: expired", "data: {}"]


async def _until_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    async for line in lines:
        if line.startswith("data: ") and line != "data: {}":
            yield line
            return
