"""Decided review items go `NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS` after their decision, with
their place in every index, the actor's history and the reporters' lists; open items, items
whose effect is still owed and the audit trail stay."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.reports import ReportReason
from notifier.moderation.retention import DAY_MS, DecidedItems
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.errors import ConfigError

from .builders import ANN, CLEAN_TEXT, FLAGGED_TEXT, HELD_TEXT, Stack, comment, stack

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DAYS = 30


@pytest.fixture
def s(redis: Redis, settings: Settings, model: ProfanityCheck) -> Stack:
    return stack(redis, settings, model)


async def indexed(s: Stack, item_id: str) -> list[str]:
    """The indexes that list `item_id`."""
    names = ["all", "open", "approved", "rejected", "held", "urgent", "claimed"]
    found = [n for n in names if await s.redis.zscore(keys.mod_index(n), item_id) is not None]
    return found + (["actor"] if await s.redis.zscore(keys.mod_actor("bob"), item_id) is not None else [])


async def test_decided_items_go_after_their_retention_and_nothing_else(s: Stack) -> None:
    await s.send(
        comment("e1", "bob", "alice", FLAGGED_TEXT),  # delivered and flagged: rejected below
        comment("e2", "bob", "carl", HELD_TEXT, post="p2"),  # held: approved below
        comment("e3", "bob", "dina", HELD_TEXT, post="p3"),  # left open
        comment("e4", "bob", "alice", CLEAN_TEXT, post="p4"),  # reported, then decided late
    )
    await s.reports.file("alice", "notification", "comment:c-e1", ReportReason.HARASSMENT, "")
    await s.reports.file("alice", "notification", "comment:c-e4", ReportReason.SPAM, "")
    decided = [
        await s.queue.decide("e1", "reject", ANN, "abuse"),
        await s.queue.decide("e2", "approve", ANN, ""),
    ]
    audited = await s.redis.xlen(keys.audit())
    due = max(o.item.decided_at_ms for o in decided) + DAYS * DAY_MS + 1
    expiry = DecidedItems(s.parts.ledger, DAYS)

    assert await expiry.expire(now_ms=due) == 0  # their recall and delivery are still owed
    await s.run_jobs()
    # not yet: the first decision's retention is not over (the two decisions may be milliseconds
    # apart on a busy machine: `due - 2` was past the first one's)
    assert await expiry.expire(now_ms=min(o.item.decided_at_ms for o in decided) + DAYS * DAY_MS) == 0
    late = await s.queue.decide("e4", "approve", ANN, "")  # decided after the others' cutoff
    assert await expiry.expire(now_ms=due) == 2

    for item_id in ("e1", "e2"):
        assert await s.queue.get(item_id) is None
        assert await indexed(s, item_id) == []
        assert not await s.redis.exists(keys.mod_reports(item_id))
    assert [m.item for m in await s.reports.mine("alice", 10)] == ["e4"]
    assert (await s.queue.get("e3")) is not None and await indexed(s, "e3") == [
        "all",
        "open",
        "held",
        "urgent",
        "actor",
    ]
    assert await indexed(s, "e4") == ["all", "approved", "actor"]
    assert await s.redis.xlen(keys.audit()) == audited + 1  # every decision stays in the trail: e4's added
    assert await expiry.expire(now_ms=late.item.decided_at_ms + DAYS * DAY_MS + 1) == 1
    assert await expiry.expire(now_ms=due + 10 * DAYS * DAY_MS) == 0  # e3 is open: it stays
    assert await DecidedItems(s.parts.ledger, 0).expire(now_ms=due * 2) == 0  # 0: kept for good


def test_the_retention_outlasts_the_event_logs(settings: Settings) -> None:
    """A replay or a reclaim of the log must not screen an expired item's event again."""
    env = {"NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS": "3", "NOTIFIER_FANOUT_RETAIN_MS": str(7 * DAY_MS)}
    with pytest.raises(ConfigError, match="NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS"):
        Settings.from_env(env)
    assert (
        Settings.from_env(
            {**env, "NOTIFIER_MODERATION_RETAIN_DECIDED_DAYS": "0"}
        ).moderation.retain_decided_days
        == 0
    )
