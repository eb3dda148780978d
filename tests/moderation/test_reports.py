"""Reports from users on real Redis through the screened fan-out and the jobs: a report creates
or raises a review item, once per reporter, rate-limited; an upheld report recalls the content;
the reporter sees the outcome; reported items rise in the urgency order."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from notifier.fanout.replay import replay
from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.content import ref_of_group
from notifier.moderation.reports import ReportReason
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.errors import Reason, Rejected

from .builders import ANN, CLEAN_TEXT, FLAGGED_TEXT, HELD_TEXT, Stack, comment, mention, stack
from .conftest import SettingsFactory

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

HARASSMENT = ReportReason.HARASSMENT


@pytest.fixture
def s(redis: Redis, settings: Settings, model: ProfanityCheck) -> Stack:
    return stack(redis, settings, model)


async def test_a_report_creates_an_item_counts_reporters_once_and_recalls_when_upheld(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", CLEAN_TEXT))
    assert len(await s.groups("alice")) == 1 and await s.queue.get("e1") is None  # the policy let it pass

    with pytest.raises(Rejected) as stranger:  # not in eve's inbox: as if it did not exist
        await s.reports.file("eve", "notification", "comment:c-e1", HARASSMENT, "")
    assert stranger.value.reason is Reason.NOT_FOUND and await s.queue.get("e1") is None
    first = await s.reports.file("alice", "notification", "comment:c-e1", HARASSMENT, "he follows me around")
    assert (first.items, first.new) == (["e1"], True)
    again = await s.reports.file("alice", "comment", "c-e1", ReportReason.SPAM, "")
    assert again.new is False  # one report per reporter and item
    await s.reports.file("carl", "comment", "c-e1", ReportReason.HATE, "")
    item = await s.queue.get("e1")
    assert item is not None
    assert (item.action, item.state, item.delivered, item.reporters) == ("report", "pending", True, 2)
    assert item.reasons == {"harassment": 1, "hate": 1}
    assert [(who, r.reason, r.note) for who, r in await s.reports.of_item("e1")] == [
        ("alice", "harassment", "he follows me around"),
        ("carl", "hate", ""),
    ]
    assert [m.status for m in await s.reports.mine("alice", 10)] == ["open"]

    outcome = await s.queue.decide("e1", "reject", ANN, "harassment")
    assert outcome.effect == "recall|e1"
    await s.run_jobs()
    assert await s.groups("alice") == [] and await s.unread("alice") == 0
    mine = await s.reports.mine("alice", 10)
    assert [(m.item, m.actor, m.reason, m.status) for m in mine] == [("e1", "bob", "harassment", "upheld")]
    # taken down, the comment is gone for everyone else: a report cannot tell what became of it
    with pytest.raises(Rejected) as gone:
        await s.reports.file("zoe", "comment", "c-e1", HARASSMENT, "")
    assert gone.value.reason is Reason.NOT_FOUND and await s.reports.mine("zoe", 10) == []


async def test_a_reported_delivered_comment_stays_delivered_through_a_replay(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", CLEAN_TEXT))
    await s.reports.file("alice", "comment", "c-e1", HARASSMENT, "")
    await replay(s.redis, partitions=2, limits=s.settings.feeds, fresh=True, screen=s.screener)
    assert len(await s.groups("alice")) == 1  # an open report does not hide what was delivered


async def test_a_mention_in_a_post_is_reported_through_its_notification(s: Stack) -> None:
    await s.send(mention("m1", "bob", ["dave", "erin"], CLEAN_TEXT))
    group = (await s.groups("dave"))[0]["id"]
    filed = await s.reports.file("dave", "notification", group, ReportReason.SPAM, "")
    assert filed.items == ["m1"]
    await s.queue.decide("m1", "reject", ANN, "")
    await s.run_jobs()
    assert await s.groups("dave") == [] and await s.groups("erin") == []


async def test_a_mention_in_a_post_is_found_among_its_actors_content_without_a_key_of_its_own(
    s: Stack,
) -> None:
    await s.send(
        mention("m1", "bob", ["dave"], CLEAN_TEXT, post="p1"),
        mention("m2", "bob", ["dave"], CLEAN_TEXT, post="p2"),
        mention("m3", "carl", ["dave"], CLEAN_TEXT, post="p1"),
        comment("e1", "bob", "dave", CLEAN_TEXT, post="p1"),
    )
    assert not await s.redis.exists(keys.mod_ref("post:p1:bob"))  # ~200 bytes an event saved

    located = await s.parts.content.of_ref(ref_of_group("mention:p1~bob") or "")

    assert [f.logged.event.id for f in located] == ["m1"]
    assert sorted(f.logged.event.id for f in await s.parts.content.of_actor("bob")) == ["e1", "m1", "m2"]


async def test_mentions_in_posts_whose_ids_hold_colons_are_told_apart(s: Stack) -> None:
    await s.send(
        mention("m1", "b:c", ["dave"], CLEAN_TEXT, post="a"),
        mention("m2", "c", ["dave"], CLEAN_TEXT, post="a:b"),
    )
    for group, wanted in (("mention:a~b:c", "m1"), ("mention:a:b~c", "m2")):
        ref = ref_of_group(group)
        assert ref is not None
        assert [f.logged.event.id for f in await s.parts.content.of_ref(ref)] == [wanted]
    assert ref_of_group("mention:a~b~c") is None and ref_of_group("like:p1:20783") is None


async def test_a_mention_in_a_post_indexed_by_an_earlier_version_is_still_found(s: Stack) -> None:
    await s.send(mention("m1", "bob", ["dave"], CLEAN_TEXT, post="p1"))
    (found,) = await s.parts.content.of_actor("bob")
    await s.redis.hdel(keys.mod_content("bob"), "bob")  # as an earlier version indexed it: a key of its own
    await s.redis.hset(keys.mod_ref("post:p1:bob"), "m1", found.position)

    assert [f.logged.event.id for f in await s.parts.content.of_ref("post:p1~bob")] == ["m1"]


async def test_content_an_earlier_version_indexed_under_the_actors_own_key_is_still_found(s: Stack) -> None:
    """Before 2026-12-07 an actor's index was a sorted set of their own (`modc:{a:ACTOR}`):
    bans and reports still find what it holds until it expires."""
    await s.send(
        mention("m1", "bob", ["dave"], CLEAN_TEXT, post="p1"), comment("e2", "bob", "alice", CLEAN_TEXT)
    )
    found = {f.logged.event.id: f.position for f in await s.parts.content.of_actor("bob")}
    await s.redis.hdel(keys.mod_content("bob"), "bob")
    before = keys.mod_content_before("bob")
    await s.redis.zadd(before, {f"{found['m1']} p1": 1, found["e2"]: 2, "m1": -5})  # and a velocity member
    assert sorted(f.logged.event.id for f in await s.parts.content.of_actor("bob")) == ["e2", "m1"]
    assert [f.logged.event.id for f in await s.parts.content.of_ref("post:p1~bob")] == ["m1"]


async def test_what_cannot_be_reported_is_refused_with_a_reason(s: Stack) -> None:
    await s.send(comment("e1", "bob", "alice", CLEAN_TEXT))
    cases = [
        ("notification", "like:p1:20783", Reason.INVALID),  # no text behind a like
        ("comment", "c-unknown", Reason.NOT_FOUND),
        ("actor", "alice", Reason.INVALID),  # yourself
        # not a user id (a group id's `~`, too long): an item no moderator could open or decide
        ("actor", "a~b", Reason.INVALID),
        ("actor", "x" * 129, Reason.INVALID),
        ("comment", "a~b", Reason.INVALID),
        ("notification", "comment:" + "a" * 250, Reason.INVALID),  # not a notification's id
    ]
    for kind, target, reason in cases:
        with pytest.raises(Rejected) as refused:
            await s.reports.file("alice", kind, target, HARASSMENT, "")  # type: ignore[arg-type]
        assert refused.value.reason is reason, (kind, target)
    assert await s.queue.get("actor~a~b") is None
    # another user's notification gets the answer a notification that does not exist gets:
    # a report tells nobody what is in someone else's inbox
    details = []
    for target in ("comment:c-e1", "comment:c-nope"):
        with pytest.raises(Rejected) as missing:
            await s.reports.file("carl", "notification", target, HARASSMENT, "")
        assert missing.value.reason is Reason.NOT_FOUND
        details.append(missing.value.detail.replace(target, "ID"))
    assert details[0] == details[1]
    with pytest.raises(Rejected) as own:
        await s.reports.file("bob", "comment", "c-e1", HARASSMENT, "")
    assert own.value.reason is Reason.INVALID


async def test_reports_are_rate_limited_per_user(
    redis: Redis, settings_factory: SettingsFactory, model: ProfanityCheck
) -> None:
    limited = stack(redis, settings_factory({"NOTIFIER_MODERATION_REPORTS_PER_HOUR": "2"}), model)
    for n in range(2):
        await limited.reports.file("alice", "actor", f"troll{n}", HARASSMENT, "")
    with pytest.raises(Rejected) as refused:
        await limited.reports.file("alice", "actor", "troll9", HARASSMENT, "")
    assert refused.value.reason is Reason.RATE_LIMITED
    # told when the hour's window ends (Retry-After), not "1" as for a busy server
    assert refused.value.retry_after_s is not None and 1 <= refused.value.retry_after_s <= 3_600
    await limited.reports.file("carl", "actor", "troll9", HARASSMENT, "")  # per user


async def test_an_actor_report_is_an_item_without_content(s: Stack) -> None:
    await s.reports.file("alice", "actor", "bob", HARASSMENT, "creepy DMs")
    item = await s.queue.get("actor~bob")
    assert item is not None and (item.type, item.actor, item.reporters) == ("actor", "bob", 1)
    outcome = await s.queue.decide("actor~bob", "approve", ANN, "nothing found")
    assert outcome.effect is None  # no event: nothing to deliver or recall
    assert [m.status for m in await s.reports.mine("alice", 10)] == ["dismissed"]


async def test_the_open_queue_is_ordered_by_urgency(s: Stack) -> None:
    await s.send(
        comment("f1", "bob", "alice", FLAGGED_TEXT, post="p1"),
        comment("f2", "bob", "alice", FLAGGED_TEXT + "!", post="p2"),
        comment("c3", "carl", "alice", CLEAN_TEXT, post="p3"),
        comment("h4", "bob", "alice", HELD_TEXT, post="p4"),
    )
    await s.reports.file("alice", "comment", "c-c3", HARASSMENT, "")

    async def order() -> list[str]:
        return [i.id for i in (await s.queue.page(state="open", order="urgency")).items]

    # held first; then the flagged by severity and arrival; a reported clean one has no severity
    assert await order() == ["h4", "f1", "f2", "c3"]
    for reporter in ("dave", "erin"):
        await s.reports.file(reporter, "comment", "c-f2", HARASSMENT, "")
    assert await order() == ["h4", "f2", "f1", "c3"]  # more reporters rise past the same severity
    assert [i.id for i in (await s.queue.page(state="open")).items] == ["f1", "f2", "h4", "c3"]  # arrival


async def test_a_late_smaller_tally_does_not_lower_the_reporter_count(s: Stack) -> None:
    await s.reports.file("alice", "actor", "bob", HARASSMENT, "")
    await s.reports.file("carl", "actor", "bob", ReportReason.SPAM, "")
    # a writer that read the reports hash before carl's report commits after it
    await s.queue.raise_reported("actor~bob", 1, {"harassment": 1})
    item = await s.queue.get("actor~bob")
    assert item is not None and (item.reporters, item.reasons) == (2, {"harassment": 1, "spam": 1})
