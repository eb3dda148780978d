"""The hub's position check against a real Redis: a session that missed a live push without the
hub seeing a loss (here: its change was logged while nothing carried its channel) is caught up
within two check periods, counted; sessions at their log's tail are left alone."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from feeds.items import ItemOp
from gateway.hub import Hub
from notifier.runtime import metrics
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.cursor import START, Cursor

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(30)]

CHECK_S = 0.2


class Recorder:
    """A session as the hub sees it, at `cursor`; a resync catches it up to `caught_up`."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.caught_up = cursor
        self.resyncs = 0
        self.expires_at = math.inf
        self.resynced = anyio.Event()

    def expire(self) -> None:
        raise AssertionError("never expires")

    def push_nowait(self, change: changelog.Live) -> None:
        self.cursor = change.cursor

    def resync(self) -> None:
        self.resyncs += 1
        self.cursor = self.caught_up
        self.resynced.set()


def like(user: str, i: int) -> ItemOp:
    return ItemOp(user, f"l|p{i}|fan", "a", 1_000 + i, f"e{i}", "fan", f"like:p{i}:0", "like", f"p{i}")


async def test_a_session_behind_its_change_log_is_caught_up_and_counted(
    redis: Redis, settings: Settings
) -> None:
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply([like("bob", 0)])
    bob = Recorder(await changelog.tail(redis, "bob"))  # at the tail: nothing to catch up
    alice = Recorder(START)  # her session started before this change, which nobody pushed
    await inbox.apply([like("alice", 1)])  # no subscriber: logged, not published
    alice.caught_up = await changelog.tail(redis, "alice")
    assert alice.caught_up.number == 1

    counted = metrics.Metrics()
    metrics.use(counted)  # this test's context: the hub reads it
    hub = Hub(redis, position_check_s=CHECK_S)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await hub.register("alice", alice)
        await hub.register("bob", bob)
        with anyio.fail_after(10 * CHECK_S):  # two rounds: the tail, then her cursor still before it
            await alice.resynced.wait()
        await anyio.sleep(3 * CHECK_S)  # three more rounds: caught up, she is not asked again
        hub.stop()
    assert (alice.resyncs, bob.resyncs) == (1, 0)
    assert counted.registry.get_sample_value("notifier_gateway_position_resyncs_total") == 1


async def test_positions_are_each_users_last_change_in_one_round_trip(
    redis: Redis, settings: Settings
) -> None:
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply([like("ann", 0), like("ann", 1), like("cy", 2)])
    ann, cy = await changelog.tail(redis, "ann"), await changelog.tail(redis, "cy")
    assert await changelog.positions(redis, ["ann", "cy", "nobody"]) == [
        (ann.epoch, ann.number),
        (cy.epoch, cy.number),
        (START.epoch, START.number),
    ]
    assert ann.number == 2


async def test_a_session_moved_to_a_recreated_log_is_not_counted(
    redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis that lost its data recreates a user's log under a new epoch, and the session is
    told to refetch: a check whose two reads straddle that is no evidence of a missed push."""
    inbox = Inbox(redis, settings.feeds)
    await inbox.apply([like("carl", 0), like("carl", 1)])
    carl = Recorder(await changelog.tail(redis, "carl"))
    reads = 0
    read_again = anyio.Event()
    real = changelog.positions

    async def counted_positions(r: Redis, users: list[str]) -> list[tuple[str, int]]:
        nonlocal reads, read_again
        out = await real(r, users)
        reads += 1
        read_again.set()
        return out

    monkeypatch.setattr(changelog, "positions", counted_positions)
    counted = metrics.Metrics()
    metrics.use(counted)
    hub = Hub(redis, position_check_s=CHECK_S)

    async def rounds(n: int) -> None:
        nonlocal read_again
        for _ in range(n):
            read_again = anyio.Event()
            with anyio.fail_after(10 * CHECK_S):
                await read_again.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await hub.register("carl", carl)
        await rounds(1)  # the old epoch's position is read
        await redis.delete(keys.toggles("carl"), keys.inbox("carl"), keys.changelog("carl"))
        await inbox.apply([like("carl", 2)])  # a new log, a new epoch
        carl.cursor = await changelog.tail(redis, "carl")  # the refetch moved the session there
        assert carl.cursor.epoch != carl.caught_up.epoch
        await rounds(3)  # one round straddling the new epoch, two on it
        hub.stop()
    assert carl.resyncs == 0
    assert counted.registry.get_sample_value("notifier_gateway_position_resyncs_total") == 0


async def test_a_second_session_waits_for_the_subscription_the_first_asked_for(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second session of a user registered while the first's SUBSCRIBE is unconfirmed
    returned at once and could read its log before the channel carried the next change: a push
    missed for good (a later one skips its number, which the live path accepts)."""
    hub = Hub(redis)
    gate = anyio.Event()
    real = hub._subscriber

    def slow(user: str) -> Any:
        subscribe = real(user)
        assert subscribe is not None

        async def later() -> None:
            await gate.wait()
            await subscribe()

        return later

    monkeypatch.setattr(hub, "_subscriber", slow)
    returned: list[str] = []
    both = anyio.Event()

    async def register(name: str, listener: Recorder) -> None:
        await hub.register("dora", listener)
        returned.append(name)
        if len(returned) == 2:
            both.set()

    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        tg.start_soon(register, "first", Recorder(START))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(register, "second", Recorder(START))
        await anyio.wait_all_tasks_blocked()
        assert returned == []  # neither may read its log yet
        gate.set()
        with anyio.fail_after(5):
            await both.wait()
        assert await redis.pubsub_numsub(keys.user_channel("dora")) == [
            (keys.user_channel("dora").encode(), 1)
        ]
        hub.stop()
