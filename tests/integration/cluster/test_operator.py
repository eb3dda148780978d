"""The operator commands on the session's Redis Cluster, through the same entry point as the CLI
(`notifier replay [--fresh]`, `notifier dlq list|show|redrive|drop`): replay rebuilds the very
views the fan-out built, and dead letters of partitions on several masters are listed, redriven
and dropped."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest

from feeds.cluster import Cluster
from feeds.inbox import Inbox
from notifier import admin
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime.eventlog import partition_of
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Like
from tests.conftest import SettingsFactory

from ..fanout.test_consumer import append
from ..views import at, pending_total
from .test_views import USERS, traffic

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PARTITIONS = {"NOTIFIER_INGEST_PARTITIONS": "6", "NOTIFIER_LOG_LEVEL": "WARNING"}


async def command(
    settings: Settings, capsys: pytest.CaptureFixture[str], **args: object
) -> tuple[int, list[Any]]:
    """Run one operator command; its exit status and the JSON lines it printed."""
    code = await admin.run_command(argparse.Namespace(**args), settings)
    return code, [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


async def views(cluster: Cluster) -> dict[bytes, bytes]:
    """Every view key (`keys.DERIVED_PATTERNS`) of every master, DUMPed (the serialized value:
    equal dumps, equal values)."""
    out: dict[bytes, bytes] = {}
    for node in await cluster.masters():
        for pattern in keys.DERIVED_PATTERNS:
            async for key in cluster.node_client(node).scan_iter(match=pattern, count=1000):
                out[key] = await cluster.dump(key)
    return out


async def pages(cluster: Cluster, settings: Settings) -> dict[str, tuple[object, ...]]:
    inbox = Inbox(cluster, settings.feeds)
    out: dict[str, tuple[object, ...]] = {}
    for user in USERS:
        page = await inbox.page(user, None, 100)
        out[user] = (page.groups, page.unread)
    return out


def worker(cluster: Cluster, settings: Settings) -> FanoutWorker:
    return FanoutWorker(
        cluster, settings.fanout, partitions=settings.ingest.partitions, limits=settings.feeds, consumer="w"
    )


async def test_replay_rebuilds_the_same_views_on_the_cluster(
    cluster: Cluster, cluster_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cluster_settings(PARTITIONS)
    events = traffic()
    await append(cluster, settings, events)
    assert await worker(cluster, settings).drain() == len(events)
    built, shown = await views(cluster), await pages(cluster, settings)
    assert any(key.startswith(b"nb:") for key in built)

    code, [stats] = await command(settings, capsys, command="replay", fresh=False)
    assert code == 0 and stats["events"] == len(events) and stats["failed"] == 0
    assert await views(cluster) == built  # byte for byte: replaying over live views is a no-op

    code, [stats] = await command(settings, capsys, command="replay", fresh=True)
    assert code == 0 and stats["events"] == len(events) and stats["deleted_keys"] > 0
    assert await pages(cluster, settings) == shown  # the same groups, byte for byte, and counts
    rebuilt = await views(cluster)
    assert {k for k in rebuilt if not k.startswith(b"nc:")} == {k for k in built if not k.startswith(b"nc:")}


async def test_dead_letters_on_several_masters_are_listed_redriven_and_dropped(
    cluster: Cluster, cluster_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cluster_settings({**PARTITIONS, "NOTIFIER_FANOUT_MAX_DELIVERIES": "2"})
    likes = [Like(id=f"l-{i}", actor=f"fan{i}", occurred_at=at(i), post="p", owner="eve") for i in range(6)]
    await cluster.set(keys.inbox("eve"), "not a list")  # every apply fails: WRONGTYPE
    partitions = {partition_of(like.actor, settings.ingest.partitions) for like in likes}
    masters = {cluster.get_node_from_key(keys.events(p)).name for p in partitions}
    assert len(masters) >= 2  # the dead letters live with their partitions, on several masters
    await append(cluster, settings, likes)
    fanout = worker(cluster, settings)
    await fanout.drain()
    for _ in range(settings.fanout.max_deliveries):
        for p in range(settings.ingest.partitions):
            await fanout.reclaim(p, min_idle_ms=0)
    assert fanout.stats.dead_lettered == len(likes)

    code, letters = await command(settings, capsys, command="dlq", verb="list", count=100)
    assert code == 0 and len(letters) == len(likes)
    first, last, *_ = (letter["ref"] for letter in letters)
    code, [shown] = await command(settings, capsys, command="dlq", verb="show", ref=first)
    assert code == 0 and shown["ref"] == first

    await cluster.delete(keys.inbox("eve"))  # the cause is fixed: redrive one, drop another
    code, [redriven] = await command(settings, capsys, command="dlq", verb="redrive", ref=first)
    assert code == 0 and redriven["redriven_to"]
    code, [dropped] = await command(settings, capsys, command="dlq", verb="drop", ref=last, reason="test")
    assert code == 0 and dropped["dropped"] is True
    assert await worker(cluster, settings).drain() == 1
    assert await pending_total(cluster, settings.ingest.partitions) == 0
    assert (await Inbox(cluster, settings.feeds).page("eve", None, 10)).unread == 1
    p = int(last.split("/")[0])
    assert len(await cluster.xrange(keys.dropped_letters(p))) == 1
