"""Moderation in the fan-out path, on a real Redis: held comments reach nobody until approved
(then exactly once), rejected ones never; a delivered comment rejected later is recalled from
every inbox, unread counts corrected, and recalling twice changes nothing; bans drop later events."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
import pytest
from redis.asyncio import Redis

from feeds import changelog
from feeds.changelog import Replay
from notifier.fanout.replay import replay
from notifier.moderation import content
from notifier.moderation.classifier import ProfanityCheck
from notifier.runtime.settings import Settings
from schemas import keys, layouts
from schemas.cursor import START
from schemas.events import Comment

from .builders import (
    ANN,
    CLEAN_TEXT,
    FLAGGED_TEXT,
    HELD_TEXT,
    Stack,
    at,
    comment,
    like,
    logged,
    mention,
    stack,
    unlike,
)
from .conftest import SettingsFactory

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def s(redis: Redis, settings: Settings, model: ProfanityCheck) -> Stack:
    return stack(redis, settings, model)


async def test_clean_comments_are_delivered_and_not_queued(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", CLEAN_TEXT))
    assert len(await s.groups("alice")) == 1
    assert (await s.queue.page()).items == []


async def test_a_held_comment_reaches_nobody_until_approved_then_exactly_once(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", HELD_TEXT))
    assert await s.groups("alice") == [] and await s.unread("alice") == 0
    item = await s.queue.get("e1")
    assert item is not None and (item.state, item.action, item.delivered) == ("pending", "hold", False)
    assert {v.rule for v in item.verdicts} >= {"blocklist", "classifier"}  # every reason is kept

    outcome = await s.queue.decide("e1", "approve", ANN, "quoting a film")
    assert outcome.effect == "deliver|e1"
    assert await s.groups("alice") == []  # delivery is the job's
    assert await s.run_jobs() >= 1
    groups = await s.groups("alice")
    assert [(g["verb"], g["text"]) for g in groups] == [("comment", HELD_TEXT)]
    assert await s.unread("alice") == 1

    # redelivery, a second job run and a replay of the log all leave exactly one notification
    await s.effects.deliver("e1")
    await s.worker.drain()
    await replay(s.redis, partitions=2, limits=s.settings.feeds, fresh=False, screen=s.screener)
    assert len(await s.groups("alice")) == 1 and await s.unread("alice") == 1
    assert await s.outbox.pending() == []


async def test_a_rejected_held_comment_never_arrives(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", HELD_TEXT))
    await s.queue.decide("e1", "reject", ANN, "abuse")
    await s.run_jobs()
    assert await s.groups("alice") == []
    # not even when the views are rebuilt from the log
    await replay(s.redis, partitions=2, limits=s.settings.feeds, fresh=True, screen=s.screener)
    assert await s.groups("alice") == [] and await s.unread("alice") == 0


async def test_a_delivered_comment_rejected_later_is_recalled(s: Stack) -> None:
    await s.send(
        comment("e0", "carl", "alice", CLEAN_TEXT, post="p0"), comment("e1", "bob", "alice", FLAGGED_TEXT)
    )
    assert len(await s.groups("alice")) == 2 and await s.unread("alice") == 2
    flagged = await s.queue.get("e1")
    assert flagged is not None and (flagged.action, flagged.delivered) == ("flag", True)

    log_before = await s.redis.llen(keys.changelog("alice"))
    outcome = await s.queue.decide("e1", "reject", ANN, "insult")
    assert outcome.effect == "recall|e1"
    await s.run_jobs()
    assert [g["id"] for g in await s.groups("alice")] == ["comment:c-e0"]
    assert await s.unread("alice") == 1
    logged = await changelog.read_after(s.redis, "alice", START, 100)
    assert isinstance(logged, Replay) and len(logged.changes) == log_before + 1
    assert orjson.loads(logged.changes[-1].payload) == {
        "op": "remove",
        "unread": 1,
        "id": "comment:c-e1",
        "unseen": 1,
    }

    # the recall again, a redelivery and a rebuild change nothing
    snapshot = await s.redis.llen(keys.changelog("alice"))
    await s.effects.recall("e1")
    await s.worker.drain()
    await replay(s.redis, partitions=2, limits=s.settings.feeds, fresh=False, screen=s.screener)
    assert await s.redis.llen(keys.changelog("alice")) == snapshot
    assert [g["id"] for g in await s.groups("alice")] == ["comment:c-e0"] and await s.unread("alice") == 1


async def test_a_recalled_mention_leaves_every_inbox(s: Stack) -> None:
    await s.send(mention("m1", "bob", ["alice", "dave", "erin"], "you shits"))
    for user in ("alice", "dave", "erin"):
        assert len(await s.groups(user)) == 1
    await s.queue.decide("m1", "reject", ANN, "")
    await s.run_jobs()
    for user in ("alice", "dave", "erin"):
        assert await s.groups(user) == [] and await s.unread(user) == 0


async def test_an_approved_held_mention_reaches_every_user(s: Stack) -> None:
    await s.send(mention("m1", "bob", ["alice", "dave"], "k y s"))
    assert await s.groups("alice") == []
    await s.queue.decide("m1", "approve", ANN, "")
    await s.run_jobs()
    assert len(await s.groups("alice")) == 1 and len(await s.groups("dave")) == 1


async def test_velocity_flags_an_actor_past_the_limit(s: Stack) -> None:
    limit = s.settings.moderation.velocity_per_min
    await s.send(
        *[comment(f"e{n}", "bob", "alice", f"comment number {n}", post=f"p{n}") for n in range(limit + 1)]
    )
    page = await s.queue.page()
    assert [(i.id, [v.rule for v in i.verdicts]) for i in page.items] == [(f"e{limit}", ["velocity"])]
    assert len(await s.groups("alice")) == limit + 1  # flagged, still delivered


async def test_the_velocity_count_and_the_content_index_share_the_actors_index_apart(s: Stack) -> None:
    """An actor's index holds their delivered content (for the log's retention) and their last
    minute for the velocity rule: recalls read only the content, the rule counts the minute. Past
    CONTENT_SPILL entries it moves to a sorted set of the actor's own; the jobs role's sweep
    prunes what an actor who stopped left in a bucket."""
    limit = s.settings.moderation.velocity_per_min
    held = comment("h1", "bob", "alice", HELD_TEXT, post="p-held")
    await s.send(
        held, *[comment(f"e{n}", "bob", "alice", f"comment number {n}", post=f"p{n}") for n in range(limit)]
    )
    found = await s.parts.content.of_actor("bob")
    assert sorted(f.logged.event.id for f in found) == sorted(
        f"e{n}" for n in range(limit)
    )  # not the held one
    flagged = [i.id for i in (await s.queue.page()).items if "velocity" in [v.rule for v in i.verdicts]]
    assert flagged == [f"e{limit - 1}"]  # the held comment counted too: the limit + 1st event

    many = [comment(f"f{n}", "erin", "alice", f"comment number {n}", post=f"q{n}") for n in range(20)]
    await s.send(*many[: layouts.CONTENT_SPILL])
    assert len(layouts.decode_content(await s.redis.hget(keys.mod_content("erin"), "erin"))) == 16
    await s.send(*many[layouts.CONTENT_SPILL :])
    assert await s.redis.hget(keys.mod_content("erin"), "erin") is None  # spilled
    assert await s.redis.pttl(keys.mod_content_spill("erin")) > 86_400_000  # the content's retention
    let_through = [e.id for e in many if (item := await s.queue.get(e.id)) is None or item.delivered]
    assert 0 < len(let_through) < len(many)  # past twice the limit, the rule holds
    assert sorted(f.logged.event.id for f in await s.parts.content.of_actor("erin")) == sorted(let_through)
    velocity = await s.redis.zrangebyscore(keys.mod_content_spill("erin"), "-inf", 0)
    assert len(velocity) == len(many)  # every one counted, once

    await s.send(comment("h2", "carl", "alice", HELD_TEXT, post="p-carl"))  # counted, never delivered
    assert await s.parts.content.of_actor("carl") == []
    [counted] = layouts.decode_content(await s.redis.hget(keys.mod_content("carl"), "carl"))
    await s.send(comment("d1", "dave", "alice", CLEAN_TEXT, post="p-dave"))
    [delivered] = layouts.decode_content(await s.redis.hget(keys.mod_content("dave"), "dave"))
    assert (counted.delivered, delivered.delivered) == (False, True)

    at = int(delivered.position.partition("/")[2].partition("-")[0])
    every = content.SWEEP_EVERY_MS  # each call sweeps every bucket
    # a sweep deletes counted entries two hours old (a fan-out an hour behind still counts
    # carl's), delivered ones past the retention
    assert await s.parts.content.sweep(at + content.COUNTED_KEEP_MS, every) == 0
    assert await s.parts.content.sweep(at + 2 * content.COUNTED_KEEP_MS + 1_000, every) == 1
    assert await s.redis.hget(keys.mod_content("carl"), "carl") is None
    assert [f.logged.event.id for f in await s.parts.content.of_actor("dave")] == ["d1"]
    assert await s.parts.content.sweep(at + s.settings.fanout.retain_ms + 1, every) == 2  # bob's too
    assert await s.parts.content.of_actor("dave") == []


@pytest.mark.parametrize("inline_chars", [0, 100_000])
async def test_the_rules_decide_the_same_on_the_loop_and_in_a_thread(
    s: Stack, inline_chars: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch with little text is screened on the event loop, a larger one in a thread."""
    from notifier.moderation import screening

    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any) -> Any:
        hops.append(args[0])
        return await run_sync(*args)

    monkeypatch.setattr(screening, "INLINE_TEXT_CHARS", inline_chars)
    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    await s.send(
        comment("e1", "bob", "alice", CLEAN_TEXT),
        comment("e2", "bob", "alice", HELD_TEXT, post="p2"),
        comment("e3", "bob", "alice", FLAGGED_TEXT, post="p3"),
    )
    assert len(hops) == (1 if inline_chars == 0 else 0)
    assert [(i.id, i.action) for i in sorted((await s.queue.page()).items, key=lambda i: i.id)] == [
        ("e2", "hold"),
        ("e3", "flag"),
    ]
    assert len(await s.groups("alice")) == 2  # the clean one and the flagged one


async def test_duplicate_text_to_many_targets_is_flagged(s: Stack) -> None:
    limit = s.settings.moderation.duplicate_targets
    text = "Check out my profile for a surprise!!"
    await s.send(*[comment(f"e{n}", f"bot{n}", f"user{n}", text, post=f"p{n}") for n in range(limit + 1)])
    page = await s.queue.page()
    assert [(i.id, [v.rule for v in i.verdicts]) for i in page.items] == [(f"e{limit}", ["duplicate"])]


async def test_one_mention_of_many_users_is_no_duplicate_but_sending_it_again_is(s: Stack) -> None:
    limit = s.settings.moderation.duplicate_targets
    text = "Happy birthday to the best crew there is"
    friends = [f"friend{n}" for n in range(limit + 3)]
    await s.send(mention("e1", "bob", friends, text))
    assert (await s.queue.page()).items == []
    assert [len(await s.groups(f)) for f in friends] == [1] * len(friends)
    await s.send(mention("e2", "bob", ["friend0", "stranger"], text, post="p2"))  # one new target
    page = await s.queue.page()
    assert [(i.id, [v.rule for v in i.verdicts]) for i in page.items] == [("e2", ["duplicate"])]


async def test_short_common_replies_are_not_duplicates(s: Stack) -> None:
    await s.send(*[comment(f"e{n}", f"fan{n}", f"user{n}", "Nice!", post=f"p{n}") for n in range(6)])
    assert (await s.queue.page()).items == []


async def test_blocked_links_are_held(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", "win a prize at spam[.]example"))
    item = await s.queue.get("e1")
    assert item is not None and item.action == "hold" and await s.groups("alice") == []


async def test_screening_a_batch_twice_records_it_once(s: Stack) -> None:
    batch = [
        logged(comment("e1", "bob", "alice", HELD_TEXT)),
        logged(comment("e2", "bob", "alice", FLAGGED_TEXT)),
    ]
    first = await s.screener.screen(batch)
    second = await s.screener.screen(batch)
    assert [e.event.id for e in first] == [e.event.id for e in second] == ["e2"]
    assert len((await s.queue.page()).items) == 2


async def test_a_ban_drops_later_events_and_rejects_held_ones(s: Stack) -> None:
    await s.send(like("l0", "bob", "alice", post="p0"), comment("e1", "bob", "alice", HELD_TEXT))
    _, outcomes = await s.bans.ban("bob", ANN, "harassment")
    assert [o.item.id for o in outcomes] == ["e1"]
    await s.send(
        comment("e2", "bob", "alice", CLEAN_TEXT, post="p2"),
        like("l2", "bob", "alice", post="p3"),
        unlike("u0", "bob", "alice", post="p0", t=5),  # undoing passes: it only removes
        comment("e3", "carl", "alice", CLEAN_TEXT, post="p4"),
    )
    assert [g["id"] for g in await s.groups("alice")] == ["comment:c-e3"]
    assert s.screener.stats.banned == 2
    assert (await s.queue.get("e1")).state == "rejected"  # type: ignore[union-attr]


async def test_drop_is_configurable_and_recorded_with_an_audit_record(
    redis: Redis, settings_factory: SettingsFactory, model: ProfanityCheck
) -> None:
    settings = settings_factory({"NOTIFIER_MODERATION_THRESHOLDS": '{"blocklist": {"drop": 1.0}}'})
    dropping = stack(redis, settings, model)
    await dropping.send(comment("e1", "bob", "alice", HELD_TEXT))
    item = await dropping.queue.get("e1")
    assert item is not None and (item.action, item.state, item.decided_by) == ("drop", "rejected", "policy")
    (link,), _ = await dropping.parts.ledger.page(None, 10)
    assert (link.record().who, link.record().role, link.record().action) == ("policy", "system", "drop")
    assert await dropping.groups("alice") == []


async def test_moderation_can_be_switched_off(redis: Redis, settings_factory: SettingsFactory) -> None:
    settings = settings_factory({"NOTIFIER_MODERATION_ENABLED": "0"})
    off = stack(redis, settings, None)
    await off.send(comment("e1", "bob", "alice", HELD_TEXT))
    assert len(await off.groups("alice")) == 1


async def test_another_actors_event_under_a_moderated_id_is_not_taken_for_it(s: Stack) -> None:
    """Ingest deduplicates ids per partition, so two actors of different partitions can send the
    same id. Moderation's records are keyed by id: the second event once passed as "screened
    before" (abuse delivered unscreened) or vanished with the first's hold."""
    from notifier.runtime.eventlog import partition_of

    parts = s.settings.ingest.partitions
    eve = "eve"
    mal = next(
        a for a in (f"mal{i}" for i in range(40)) if partition_of(a, parts) != partition_of(eve, parts)
    )
    await s.send(comment("x1", eve, "alice", HELD_TEXT), comment("x2", eve, "alice", HELD_TEXT))

    def reusing(eid: str, text: str, comment_id: str) -> Comment:
        return Comment(
            id=eid, actor=mal, occurred_at=at(1), post="p2", owner="carol", comment=comment_id, text=text
        )

    await s.send(reusing("x1", HELD_TEXT, "c-abuse"))  # would be held: not delivered, counted
    assert await s.groups("carol") == []
    await s.send(reusing("x2", CLEAN_TEXT, "c-clean"))  # the rules pass it: delivered
    assert [g["id"] for g in await s.groups("carol")] == ["comment:c-clean"]
    for eid in ("x1", "x2"):  # the first events' items, untouched
        item = await s.queue.get(eid)
        assert item is not None and (item.actor, item.state) == (eve, "pending")
