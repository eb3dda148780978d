"""Appending again after a Redis restart, on a real redis-server: what the crash took back is
appended again, what survived is left alone (its idempotency record and entry are written together). The
watch itself is proved on a restarted redis-server (tests/faults/test_aof.py)."""

from __future__ import annotations

import logging
import time

import pytest
from redis.asyncio import Redis

from notifier.api.append import EventLog, append_again
from notifier.api.recent import RecentAppends
from notifier.api.recovery import RestartWatch, Runs
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


async def test_an_api_that_stopped_long_before_the_restart_is_not_reported_as_a_loss(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A surviving api saw the old run alive well after a dead api's last note: Redis had written
    what that api accepted, and no window is reported. One that stopped noting just before the
    restart is (it may have died with Redis)."""
    watch = RestartWatch(redis, SETTINGS, RecentAppends(SETTINGS.recovery_keep_s, 10))
    runs = [Runs({0: "old"}, 0)]
    monkeypatch.setattr(watch, "_look", lambda: _first(runs))
    assert await watch.check()
    now_ms = int(time.time() * 1000)
    long_before = now_ms - 60_000 + 1_000  # not yet forgotten (FORGET_MS) when the crash comes
    await redis.hset(keys.ingest_watch(), mapping={"early": f"old {long_before}", "late": f"old {now_ms}"})
    runs[0] = Runs({0: "new"}, now_ms - 10_000)  # restarted, past the others' grace to note it
    with caplog.at_level(logging.INFO, logger="notifier.api.recovery"):
        assert await watch.check()
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "possibly lost" in m and "api late " in m], said
    assert not [m for m in said if "possibly lost" in m and "api early " in m], said
    assert [m for m in said if "api early stopped noting" in m], said
    assert watch.unrecovered == 1
    assert list(await redis.hgetall(keys.ingest_watch())) == [watch._name.encode()]  # the others' notes gone


async def _first(runs: list[Runs]) -> Runs:
    return runs[0]
