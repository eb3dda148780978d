"""The gateway's sharded hub on the session's Redis Cluster: a topology change is repaired where
it happened. A slot migrating away resyncs only the sessions of that slot (a user of another
slot on the same master, and users of other masters, keep their subscriptions), a killed
link to one master resyncs only the sessions that link carried, and a stale slot map never
puts a subscription on a replica."""

from __future__ import annotations

import math
from itertools import count

import anyio
import pytest
from redis.asyncio.cluster import PRIMARY
from redis.crc import key_slot

from feeds import changelog
from feeds.cluster import Cluster
from feeds.inbox import Inbox
from feeds.items import ItemOp
from gateway.shardedhub import ShardedHub
from loadtest.cluster import ClusterLab, Node
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.cursor import START

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]


class Recorder:
    """A session as the hub sees it; `changed` is set at each push or resync."""

    def __init__(self) -> None:
        self.pushed = 0
        self.resyncs = 0
        self.expires_at = math.inf
        self.cursor = START  # the hub's position check is off here
        self.changed = anyio.Event()

    def expire(self) -> None:
        raise AssertionError("never expires")

    def push_nowait(self, change: changelog.Live) -> None:
        self.pushed += 1
        self.changed.set()

    def resync(self) -> None:
        self.resyncs += 1
        self.changed.set()

    async def until(self, pushed: int = 0, resyncs: int = 0) -> None:
        with anyio.fail_after(10):
            while self.pushed < pushed or self.resyncs < resyncs:
                await self.changed.wait()
                self.changed = anyio.Event()


def slot_of(user: str) -> int:
    return int(key_slot(keys.user_channel(user).encode()))


def users_on(lab: ClusterLab, master: Node, n: int) -> list[str]:
    """`n` users of distinct slots whose channels `master` serves."""
    found: dict[int, str] = {}
    for i in count():
        user = f"hub-user-{i}"
        if slot_of(user) not in found and lab.node_of_slot(slot_of(user)) is master:
            found[slot_of(user)] = user
            if len(found) == n:
                return list(found.values())
    raise AssertionError("unreachable")


async def publish(cluster: Cluster, user: str, n: int) -> None:
    await cluster.execute_command("SPUBLISH", keys.user_channel(user), f"e1 {n} 7 {{}}")


async def test_a_slot_migration_and_a_killed_link_resync_only_the_sessions_they_touch(
    cluster: Cluster, redis_cluster: ClusterLab
) -> None:
    home, target, other = redis_cluster.masters()
    alice, bob = users_on(redis_cluster, home, 2)
    [carol] = users_on(redis_cluster, other, 1)
    sessions = {user: Recorder() for user in (alice, bob, carol)}
    hub = ShardedHub(cluster, keepalive_s=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        for user, session in sessions.items():
            await hub.register(user, session)
        for user, session in sessions.items():
            await publish(cluster, user, 1)
            await session.until(pushed=1)

        # alice's slot migrates to another master: Redis pushes `sunsubscribe` for her channel
        await anyio.to_thread.run_sync(redis_cluster.move_slot, slot_of(alice), target)
        await sessions[alice].until(resyncs=1)
        await publish(cluster, alice, 2)
        await publish(cluster, bob, 2)
        await sessions[alice].until(pushed=2)
        await sessions[bob].until(pushed=2)
        assert [sessions[u].resyncs for u in (alice, bob, carol)] == [1, 0, 0]

        # the link to carol's master is killed: only what it carried resyncs
        other.ask("CLIENT", "KILL", "TYPE", "pubsub")
        await sessions[carol].until(resyncs=1)
        for user, session in sessions.items():
            await publish(cluster, user, 3)
            await session.until(pushed=session.pushed + 1)
        assert [sessions[u].resyncs for u in (alice, bob, carol)] == [1, 0, 1]
        hub.stop()
    await anyio.to_thread.run_sync(redis_cluster.move_slot, slot_of(alice), home)


async def test_a_stale_map_naming_a_replica_as_master_puts_no_subscription_there(
    cluster: Cluster, redis_cluster: ClusterLab
) -> None:
    """A just-restarted master answers CLUSTER SLOTS from its old nodes.conf until it hears
    otherwise, and a replica accepts SSUBSCRIBE: the fault test's gateway once subscribed a
    user on such a node and its pushes stopped. The hub asks a node whether it is a master
    before linking to it, and refreshes the map instead."""
    home = redis_cluster.masters()[0]
    [dave] = users_on(redis_cluster, home, 1)
    [replica] = [
        n for n in redis_cluster.live() if n.ask("ROLE")[0] == b"slave" and n.ask("ROLE")[2] == home.port
    ]
    await cluster.initialize()
    manager = cluster.nodes_manager  # the map such a node serves: dave's slot on its replica
    stale = manager.get_node(node_name=replica.address)
    stale.server_type = PRIMARY
    manager.slots_cache[slot_of(dave)] = [stale]
    session = Recorder()
    hub = ShardedHub(cluster, keepalive_s=0.5)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await hub.register(dave, session)
        channel = keys.user_channel(dave)
        assert home.ask("PUBSUB", "SHARDNUMSUB", channel) == [channel.encode(), 1]
        assert replica.ask("PUBSUB", "SHARDNUMSUB", channel) == [channel.encode(), 0]
        await publish(cluster, dave, 1)
        await session.until(pushed=1)
        hub.stop()


async def test_the_position_check_catches_up_a_session_behind_its_log_on_a_cluster(
    cluster: Cluster, redis_cluster: ClusterLab, settings: Settings
) -> None:
    """As on one Redis (tests/integration/gateway/test_position_check.py): the tails are read
    per master, and a session behind its log is caught up."""
    [erin] = users_on(redis_cluster, redis_cluster.masters()[0], 1)
    op = ItemOp(erin, "l|p1|fan", "a", 1_000, "e1", "fan", "like:p1:0", "like", "p1")
    await Inbox(cluster, settings.feeds).apply([op])  # nobody listens: logged, not published
    session = Recorder()  # at START, before that change
    hub = ShardedHub(cluster, keepalive_s=0.5, position_check_s=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        await hub.register(erin, session)
        await session.until(resyncs=1)
        hub.stop()
