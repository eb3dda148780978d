"""Bans, suspensions, unbans and ban-and-remove on real Redis through the screened fan-out and
the jobs role; events dropped for a ban are counted and listed; the queue's numbers; positions
carry their partition as ingest reports it."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.records import wall_ms
from notifier.runtime.settings import Settings
from schemas.errors import Reason, Rejected

from .builders import (
    ANN,
    BEN,
    CLEAN_TEXT,
    FLAGGED_TEXT,
    HELD_TEXT,
    Stack,
    comment,
    like,
    logged,
    mention,
    stack,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def s(redis: Redis, settings: Settings, model: ProfanityCheck) -> Stack:
    return stack(redis, settings, model)


async def audit_actions(s: Stack) -> list[str]:
    links, _ = await s.parts.ledger.page(None, 100)
    return [link.record().action for link in links]


async def test_a_ban_needs_a_reason(s: Stack) -> None:
    for reason in ("", "   "):
        with pytest.raises(Rejected) as refused:
            await s.bans.ban("bob", ANN, reason)
        assert refused.value.reason is Reason.INVALID
    assert await s.bans.active() == []


async def test_ban_and_remove_recalls_everything_delivered_from_every_inbox(s: Stack) -> None:
    await s.send(
        comment("e1", "bob", "alice", CLEAN_TEXT, post="p1"),
        mention("m1", "bob", ["dave", "erin"], CLEAN_TEXT, post="p2"),
        comment("e2", "bob", "alice", FLAGGED_TEXT, post="p3"),  # flagged, delivered
        comment("e3", "bob", "alice", HELD_TEXT, post="p4"),  # held, never delivered
        comment("e4", "bob", "alice", CLEAN_TEXT, post="p5"),
        comment("c1", "carl", "alice", CLEAN_TEXT, post="p6"),
        like("l1", "bob", "alice", post="p7"),  # not text: stays
    )
    await s.queue.decide("e4", "reject", ANN, "")  # already recalled on its own
    await s.run_jobs()
    assert len(await s.groups("alice")) == 4 and len(await s.groups("dave")) == 1

    ban, outcomes = await s.bans.ban("bob", BEN, "harassment campaign", remove_content=True)
    assert ban.until_ms == 0
    assert sorted((o.item.id, o.effect) for o in outcomes) == [
        ("e1", "recall|e1"),
        ("e2", "recall|e2"),
        ("e3", None),
        ("m1", "recall|m1"),
    ]
    await s.run_jobs()
    assert sorted(g["id"] for g in await s.groups("alice")) == ["comment:c-c1", "like:p7:20454"]
    assert await s.groups("dave") == [] and await s.groups("erin") == []
    assert await s.unread("dave") == 0
    for item_id in ("e1", "e2", "e3", "m1"):
        item = await s.queue.get(item_id)
        assert (
            item is not None and item.state == "rejected" and item.note == "actor banned: harassment campaign"
        )
    assert (await audit_actions(s)).count("ban") == 1
    assert await s.outbox.pending() == []


async def test_events_dropped_for_a_ban_are_counted_once_and_listed(s: Stack) -> None:
    await s.bans.ban("bob", ANN, "spam")
    await s.send(
        comment("e1", "bob", "alice", CLEAN_TEXT, post="p1"),
        like("l1", "bob", "alice", post="p2"),
        comment("c1", "carl", "alice", CLEAN_TEXT, post="p3"),
    )
    assert [g["id"] for g in await s.groups("alice")] == ["comment:c-c1"]
    late = [logged(comment("e9", "bob", "alice", CLEAN_TEXT), accepted_ms=wall_ms())]
    assert await s.screener.screen(late) == []
    assert await s.screener.screen(late) == []  # a redelivery counts once
    dropped = await s.bans.dropped("bob", 10)
    assert dropped.count == 3 and sorted(i for i, _ in dropped.events) == ["e1", "e9", "l1"]
    assert await s.bans.dropped_total() == 3


async def test_a_suspension_drops_events_only_while_it_lasts(
    redis: Redis, settings: Settings, model: ProfanityCheck
) -> None:
    now = wall_ms()
    earlier = stack(redis, settings, model, clock=lambda: now - 20_000)
    past, _ = await earlier.bans.ban("bob", ANN, "cool off", duration_s=10)  # over 10 s ago
    assert past.until_ms == now - 10_000
    current = stack(redis, settings, model)
    assert await current.bans.active() == []
    await current.send(comment("e1", "bob", "alice", CLEAN_TEXT, post="p1"))
    assert len(await current.groups("alice")) == 1

    suspension, _ = await current.bans.ban("bob", ANN, "again", duration_s=3_600)
    assert [b.actor for b in await current.bans.active()] == ["bob"]
    await current.send(comment("e2", "bob", "alice", CLEAN_TEXT, post="p2"))
    assert len(await current.groups("alice")) == 1 and (await current.bans.dropped("bob", 5)).count == 1
    assert suspension.until_ms > wall_ms()
    assert await audit_actions(current) == ["suspend", "suspend"]


async def test_unban_lets_later_events_through_and_is_audited(s: Stack) -> None:
    await s.bans.ban("bob", ANN, "spam")
    with pytest.raises(Rejected) as refused:
        await s.bans.unban("bob", BEN, "")
    assert refused.value.reason is Reason.INVALID
    lifted = await s.bans.unban("bob", BEN, "appeal accepted")
    assert lifted.reason == "spam" and await s.bans.active() == []
    await s.send(comment("e1", "bob", "alice", CLEAN_TEXT))
    assert len(await s.groups("alice")) == 1
    with pytest.raises(Rejected) as missing:
        await s.bans.unban("bob", BEN, "again")
    assert missing.value.reason is Reason.NOT_FOUND
    links, _ = await s.parts.ledger.page(None, 10, newest_first=True)
    newest = links[0].record()
    assert (newest.action, newest.who, newest.reason, newest.before, newest.after) == (
        "unban",
        "ben",
        "appeal accepted",
        {"banned": "yes", "until_ms": "0"},
        {"banned": "no"},
    )
    assert (await s.parts.ledger.verify()).ok
    history = await s.bans.history("bob")
    assert [(e.action, e.by, e.reason) for e in history] == [
        ("unban", "ben", "appeal accepted"),
        ("ban", "ann", "spam"),
    ]


async def test_queue_numbers_and_positions_as_ingest_reports_them(s: Stack) -> None:
    appended = await s.log.append([comment("e1", "bob", "alice", HELD_TEXT, post="p1")], "posts")
    await s.send(comment("e2", "bob", "alice", FLAGGED_TEXT, post="p2"))
    await s.send(comment("e3", "carl", "alice", HELD_TEXT, post="p3"))
    item = await s.queue.get("e1")
    assert item is not None and item.position == appended[0].position  # PARTITION/ENTRY
    await s.queue.claim("e2", ANN)
    await s.queue.decide("e3", "reject", ANN, "")
    counts = await s.queue.counts()
    assert {k: v for k, v in counts.items() if k != "oldest_open_ms"} == {
        "pending": 1,
        "claimed": 1,
        "held": 1,
        "approved": 0,
        "rejected": 1,
    }
    assert counts["oldest_open_ms"] == item.created_ms


async def test_what_a_lifted_or_replaced_ban_dropped_stays_dropped_in_a_replay(
    redis: Redis, settings: Settings, model: ProfanityCheck
) -> None:
    """A replay screens the log's events again with their accepted times: one accepted while a
    ban or suspension held stays dropped after the ban is lifted, or the suspension turned into
    a ban (a replay never undoes a moderator's decision)."""
    now = [wall_ms()]
    s = stack(redis, settings, model, clock=lambda: now[0])
    await s.bans.ban("bob", ANN, "spam")
    await s.bans.ban("carl", ANN, "cool off", duration_s=3_600)
    during = [
        logged(comment(f"{a}1", a, "alice", CLEAN_TEXT, post=f"p{a}"), accepted_ms=now[0] + 10)
        for a in ("bob", "carl")
    ]
    assert await s.screener.screen(during) == []
    now[0] += 1_000
    await s.bans.unban("bob", BEN, "appeal")
    await s.bans.ban("carl", BEN, "for good")
    now[0] += 1_000
    assert await s.screener.screen(during) == []  # the replay
    after = logged(comment("bob2", "bob", "alice", CLEAN_TEXT, post="p9"), accepted_ms=now[0])
    assert [e.event.id for e in await s.screener.screen([*during, after])] == ["bob2"]
    # the windows are kept by lifts and replacements, not by time passing
    with pytest.raises(Rejected) as missing:
        await s.bans.unban("bob", BEN, "again")
    assert missing.value.reason is Reason.NOT_FOUND


async def test_an_expired_suspension_is_not_there_to_lift(
    redis: Redis, settings: Settings, model: ProfanityCheck
) -> None:
    now = [wall_ms()]
    s = stack(redis, settings, model, clock=lambda: now[0])
    await s.bans.ban("bob", ANN, "cool off", duration_s=10)
    now[0] += 11_000
    with pytest.raises(Rejected) as missing:
        await s.bans.unban("bob", BEN, "early")
    assert missing.value.reason is Reason.NOT_FOUND
    assert await audit_actions(s) == ["suspend"]


@pytest.mark.parametrize("remove_content", [False, True])
async def test_what_was_sent_before_a_ban_and_screened_after_it_is_treated_as_the_ban_would(
    redis: Redis, settings: Settings, model: ProfanityCheck, remove_content: bool
) -> None:
    """The fan-out screens an event after the ban that came in after it was accepted: the ban
    would have rejected it as an open item (held or flagged), and with the actor's content
    removed, recalled it even if clean."""
    now = wall_ms()
    s = stack(redis, settings, model, clock=lambda: now)
    before = [
        logged(comment("clean", "bob", "alice", CLEAN_TEXT, post="p1"), accepted_ms=now - 5_000),
        logged(comment("held", "bob", "alice", HELD_TEXT, post="p2"), accepted_ms=now - 5_000),
        logged(comment("flagged", "bob", "alice", FLAGGED_TEXT, post="p3"), accepted_ms=now - 5_000),
    ]
    _, rejected = await s.bans.ban("bob", ANN, "abuse", remove_content=remove_content)
    assert rejected == []  # nothing of theirs screened yet
    passed = [e.event.id for e in await s.screener.screen(before)]
    assert passed == ([] if remove_content else ["clean"])
    held = await s.queue.get("held")  # never an open item for someone to decide: rejected
    assert held is not None and held.state == "rejected" and "ban" in {v.rule for v in held.verdicts}
    dropped = await s.bans.dropped("bob", 10)
    assert sorted(i for i, _ in dropped.events) == sorted({"clean", "held", "flagged"} - set(passed))
    # what the ban dropped stays dropped once it is lifted: a replay follows the decision
    await s.bans.unban("bob", BEN, "appeal")
    assert [e.event.id for e in await s.screener.screen(before)] == passed


async def test_banning_again_with_content_removed_removes_it(
    redis: Redis, settings: Settings, model: ProfanityCheck
) -> None:
    now = wall_ms()
    s = stack(redis, settings, model, clock=lambda: now)
    await s.bans.ban("bob", ANN, "abuse")
    again, _ = await s.bans.ban("bob", BEN, "worse", remove_content=True)
    assert again.remove_content and again.by == "ann"  # the first ban, now with its content removed
    before = [logged(comment("clean", "bob", "alice", CLEAN_TEXT, post="p1"), accepted_ms=now - 5_000)]
    assert await s.screener.screen(before) == []
