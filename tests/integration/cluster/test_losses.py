"""The fan-out's loss report on the session's Redis Cluster: its count, mark and consumers keys
share the partition's slot, so the janitor's one script reads and writes them there."""

from __future__ import annotations

import pytest

from feeds.cluster import Cluster
from notifier.api.append import EventLog
from notifier.fanout.consumer import FanoutWorker
from notifier.fanout.janitor import Janitor
from schemas import keys
from schemas.events import Like
from tests.conftest import SettingsFactory

from ..views import at

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_unread_entries_deleted_from_a_partition_on_a_cluster_are_reported_once(
    cluster: Cluster, cluster_settings: SettingsFactory
) -> None:
    settings = cluster_settings({"NOTIFIER_INGEST_PARTITIONS": "1"})
    log = EventLog(cluster, settings.ingest)

    def likes(owner: str, n: int) -> list[Like]:
        return [
            Like(id=f"{owner}-{i}", actor="fan", occurred_at=at(i), post=f"p{i}", owner=owner)
            for i in range(n)
        ]

    assert {a.status for a in await log.append(likes("ola", 2), "posts")} == {"accepted"}
    worker = FanoutWorker(cluster, settings.fanout, partitions=1, limits=settings.feeds, consumer="w1")
    assert await worker.drain() == 2
    janitor = Janitor(cluster, settings.fanout, partitions=1)
    assert await janitor.report_gap(0) is None
    assert {a.status for a in await log.append(likes("pia", 4), "posts")} == {"accepted"}
    await cluster.xtrim(keys.events(0), maxlen=0, approximate=False)
    gap = await janitor.report_gap(0)
    assert gap is not None and gap.lost == 4, gap
    assert await janitor.report_gap(0) is None
    assert len(await cluster.xrange(keys.dead_letters(0))) == 1
