"""`explain` on real Redis, one outcome at a time: where the event is in the log, its fan-out
state (applied, waiting, pending with consumer and deliveries, dead-lettered), its moderation
verdicts and decision, and each recipient's item (applied, superseded, undone, retracted, capped
out, held), over the CLI's Explainer and the admin route."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from redis.asyncio import Redis

from notifier.explain import Explainer, Explanation
from notifier.fanout.deadletter import DeadLetters
from notifier.runtime import tokens
from notifier.runtime.eventlog import partition_of
from notifier.runtime.settings import Settings
from schemas import keys
from tests.conftest import SettingsFactory
from tests.e2e.harness import running_app
from tests.moderation.builders import ANN, FLAGGED_TEXT, HELD_TEXT, Stack, comment, like, stack, unlike

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def explained(s: Stack, event_id: str, user: str | None = None) -> dict[str, Any]:
    found = await Explainer(s.redis, s.settings).explain(event_id, user)
    assert found is not None
    body: dict[str, Any] = orjson.loads(found.to_json())
    return body


@pytest.fixture
def s(redis: Redis, settings: Settings) -> Stack:
    return stack(redis, settings, None)


async def test_an_applied_event_is_applied_everywhere_with_a_push(s: Stack) -> None:
    await s.send(like("e1", "bob", "olga"))
    got = await explained(s, "e1")
    p = partition_of("bob", s.settings.ingest.partitions)
    assert got["log"]["partition"] == p and got["log"]["in_log"] and got["log"]["service"] == "posts"
    assert got["fanout"] == {"state": "applied"} and got["moderation"] is None
    assert got["recipients"] == [
        {"user": "olga", "item": "l|p1|bob", "group": got["recipients"][0]["group"], "state": "applied",
         "by_event": "", "pushed": True}
    ]  # fmt: skip


async def test_unknown_and_self_notified_events(s: Stack) -> None:
    assert await Explainer(s.redis, s.settings).explain("never-sent") is None
    await s.send(like("e1", "bob", "olga"))
    got = await explained(s, "e1", user="bob")
    assert got["recipients"] == [] and got["note"] == "bob is not a recipient: it is their own action"


async def test_waiting_then_pending_on_a_consumer_then_dead_lettered(s: Stack) -> None:
    await s.log.append([like("e1", "bob", "olga")], "posts")
    assert (await explained(s, "e1"))["fanout"]["state"] == "waiting"
    p = partition_of("bob", s.settings.ingest.partitions)
    stream = keys.events(p)
    await s.redis.xgroup_create(stream, keys.FANOUT_GROUP, id="0", mkstream=True)
    assert (await explained(s, "e1"))["fanout"]["state"] == "waiting"
    await s.redis.xreadgroup(keys.FANOUT_GROUP, "crashed-7", {stream: ">"}, count=10)
    got = await explained(s, "e1")
    assert {k: got["fanout"][k] for k in ("state", "consumer", "deliveries")} == {
        "state": "pending",
        "consumer": "crashed-7",
        "deliveries": 1,
    }
    assert got["recipients"][0]["state"] == "not_applied"
    entry = got["log"]["entry"]
    assert await DeadLetters(s.redis).move(p, entry.encode(), 5, "gave up after 5 deliveries")
    got = await explained(s, "e1")
    assert got["fanout"]["state"] == "dead_lettered" and got["fanout"]["deliveries"] == 5
    assert got["fanout"]["dead_letter"].startswith(f"{p}/")
    # what dead-lettered an event is often a key of the wrong type: explained, not a 500
    await s.redis.set(keys.toggles("olga"), "oops")
    (olga,) = (await explained(s, "e1"))["recipients"]
    assert olga["state"] == "unreadable" and "WRONGTYPE" in olga["error"], olga


async def test_superseded_and_undone(s: Stack) -> None:
    await s.send(like("old", "bob", "olga", t=0), like("new", "bob", "olga", t=5))
    got = await explained(s, "old")
    assert (got["recipients"][0]["state"], got["recipients"][0]["by_event"]) == ("superseded", "new")
    await s.send(unlike("gone", "bob", "olga", t=9))
    got = await explained(s, "new")
    assert (got["recipients"][0]["state"], got["recipients"][0]["by_event"]) == ("undone", "gone")
    assert (await explained(s, "gone"))["recipients"][0]["state"] == "applied"


async def test_capped_out_of_a_full_inbox(redis: Redis, settings_factory: SettingsFactory) -> None:
    s = stack(redis, settings_factory({"NOTIFIER_FEEDS_MAX_GROUPS": "2"}), None)
    await s.send(*(like(f"e{i}", f"fan{i}", "olga", post=f"p{i}", t=i) for i in range(3)))
    assert [r["state"] for r in (await explained(s, "e0"))["recipients"]] == ["capped_out"]
    assert [r["state"] for r in (await explained(s, "e2"))["recipients"]] == ["applied"]


async def test_held_by_moderation_then_rejected_is_held_and_a_flagged_one_retracted(s: Stack) -> None:
    await s.send(comment("bad", "bob", "olga", HELD_TEXT), comment("meh", "cid", "olga", FLAGGED_TEXT))
    got = await explained(s, "bad")
    assert got["moderation"]["action"] == "hold" and got["moderation"]["state"] == "pending"
    assert "blocklist" in {v["rule"] for v in got["moderation"]["verdicts"]}
    assert [r["state"] for r in got["recipients"]] == ["held"]
    assert [r["state"] for r in (await explained(s, "meh"))["recipients"]] == ["applied"]
    await s.queue.decide("meh", "reject", ANN, "rude")
    await s.run_jobs()
    got = await explained(s, "meh")
    assert (got["moderation"]["state"], got["moderation"]["decided_by"]) == ("rejected", "ann")
    assert [r["state"] for r in got["recipients"]] == ["retracted"]


@pytest.mark.e2e
async def test_the_admin_route_answers_moderators_only(redis: Redis, settings: Settings) -> None:
    async with running_app(settings, redis) as app:
        await app.accept(
            {"type": "like", "id": "e1", "actor": "bob", "post": "p1", "owner": "olga",
             "occurred_at": "2026-01-01T00:00:00Z"}
        )  # fmt: skip
        await app.worker.drain()
        path = "/v1/admin/events/e1/explain"
        user = tokens.issue(settings.auth, "olga", ttl_s=60)
        moderator = tokens.issue(settings.auth, "ann", ttl_s=60, role="moderator")
        assert (await app.http.get(path)).status_code == 401
        assert (await app.http.get(path, headers={"Authorization": f"Bearer {user}"})).status_code == 403
        ok = await app.http.get(path + "?user=olga", headers={"Authorization": f"Bearer {moderator}"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["recipients"][0]["state"] == "applied"
        msgspec.convert(ok.json(), Explanation)  # as the OpenAPI document says
        missing = await app.http.get(
            "/v1/admin/events/nope/explain", headers={"Authorization": f"Bearer {moderator}"}
        )
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
