"""Appending again after a Redis restart, on a real redis-server: what the crash took back is
appended again, what survived is left alone (its idempotency record and entry are written together). The
watch itself is proved on a restarted redis-server (tests/faults/test_aof.py)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from notifier.api.append import EventLog, append_again
from notifier.api.recent import RecentAppends
from notifier.runtime.settings import IngestSettings
from schemas import keys
from tests.unit.builders import like

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SETTINGS = IngestSettings(partitions=1)


async def test_what_a_crash_took_back_is_appended_again_and_survivors_are_left(redis: Redis) -> None:
    recent = RecentAppends(SETTINGS.recovery_keep_s, SETTINGS.recovery_keep_events)
    log = EventLog(redis, SETTINGS, recent)
    kept, lost = like("kim", eid="e-kept"), like("lou", eid="e-lost")
    appended = await log.append([kept, lost], "posts")
    assert [a.status for a in appended] == ["accepted", "accepted"]
    assert len(recent) == 2
    await log.append([kept], "posts")  # a duplicate is not kept twice
    assert len(recent) == 2
    # the crash took back the last append: its entry and its idempotency record (one script, one step)
    lost_id = appended[1].position.partition("/")[2]
    await redis.xdel(keys.events(0), lost_id)
    await redis.hdel(keys.idempotency(0, "e-lost"), "e-lost")
    again = await append_again(redis, [k.command for k in recent.snapshot()])
    assert again == [False, True]
    rows = await redis.xrange(keys.events(0))
    assert len(rows) == 2 and rows[-1][0].decode() != lost_id
    assert await append_again(redis, [k.command for k in recent.snapshot()]) == [False, False]
