"""Redis crashes that lose the AOF's tail (what a host crash does to writes not yet on disk):
the redis-server is SIGKILLed and its AOF cut back before the restart. Accepted events must be
appended again by the api that accepted them, or reported; a client's cursor into the lost part
of a change log must get refetch."""

from __future__ import annotations

import re
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Final

import anyio
import orjson
import pytest
from websockets.asyncio.client import connect

from schemas import keys

from .checker import check
from .harness import PARTITIONS, Lab, wait_until
from .ledger import CommentFactory, Json
from .observers import PushClient, quiesce, start_clients, wait_clients_caught_up

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OWNERS: Final = ("alice", "bob", "carol", "dave")
DRAIN_TIMEOUT_S: Final = 90.0
CUT_SLACK_S: Final = 0.5  # a write reaches the AOF file within an event-loop turn of Redis


async def page(lab: Lab, user: str) -> Json:
    """The first page of the inbox over REST, with the resume cursor a client gets with it."""
    auth = {"Authorization": f"Bearer {lab.token(user)}"}
    response = await lab.http.get("/v1/me/notifications", headers=auth)
    response.raise_for_status()
    body: Json = response.json()
    return body


async def page_cursor(lab: Lab, user: str) -> str:
    cursor: str = (await page(lab, user))["cursor"]
    return cursor


async def resume(lab: Lab, user: str, cursor: str) -> list[Json]:
    """Frames of a session resumed from `cursor`, up to and including `ready`."""
    frames: list[Json] = []
    async with connect(lab.ws_url, proxy=None, open_timeout=10, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": lab.token(user), "cursor": cursor}).decode())
        with anyio.fail_after(10):
            while not frames or frames[-1]["type"] != "ready":
                frames.append(orjson.loads(await ws.recv()))
    return frames


def test_a_cursor_into_a_change_log_tail_the_aof_lost_gets_refetch(tmp_path: Path) -> None:
    anyio.run(_cursor_into_lost_tail, tmp_path)


async def _cursor_into_lost_tail(tmp_path: Path) -> None:
    async with Lab(tmp_path, appendfsync="always") as lab:
        await lab.start(lab.worker("worker-0"), lab.role("api", "api"), lab.role("gateway", "gateway"))
        factory = CommentFactory("aof-cursor", ["alice"])
        assert (await lab.post(factory.make())).status == "acked"
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        first = await page_cursor(lab, "alice")
        kept = lab.server.aof.stat().st_size  # `always`: every write so far is in the file
        lost = factory.make()
        assert (await lab.post(lost)).status == "acked"
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        seen = await page_cursor(lab, "alice")  # the client saw change N, which the crash loses
        assert seen.split(".")[0] == first.split(".")[0] and seen != first

        lab.server.sigkill()
        assert lab.server.cut_aof(kept) > 0
        await lab.server.restart()
        later = factory.make()
        assert (await lab.post(later)).status == "acked"  # the next change reuses N

        async def applied() -> bool:
            # the change after the restart, and the lost one, which the api appends again once it
            # sees Redis restarted (whenever that is: a change logged after `tail` was read moved
            # the log's end past it)
            shown = {g.get("comment") for g in (await page(lab, "alice"))["groups"]}
            return {later["comment"], lost["comment"]} <= shown

        await wait_until(applied, DRAIN_TIMEOUT_S, what="the lost change and one after the restart")
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        tail = await page_cursor(lab, "alice")
        assert int(tail.split(".")[1].split("-")[0]) >= int(seen.split(".")[1].split("-")[0])  # N reused
        frames = await resume(lab, "alice", seen)
        print(f"\n[AOF cursor] saw {seen}, the log ends at {tail}; resumed: {[f['type'] for f in frames]}")
        assert frames[0] == {"type": "refetch", "reason": "cursor_expired", "cursor": tail}, frames
        assert frames[-1]["cursor"] == tail


def test_redis_sigkill_under_load_with_a_cut_aof_loses_no_accepted_event(tmp_path: Path) -> None:
    anyio.run(_cut_aof_under_load, tmp_path)


async def _cut_aof_under_load(tmp_path: Path) -> None:
    async with Lab(tmp_path, appendfsync="everysec") as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(2)]
        api, gateway = lab.role("api", "api"), lab.role("gateway", "gateway")
        await lab.start(*workers, api, gateway)
        clients = [PushClient(user, lab.ws_url, lab.http, lab.token(user)) for user in OWNERS[:2]]
        factory = CommentFactory("aof-load", OWNERS)
        async with anyio.create_task_group() as tg:
            await start_clients(tg, clients)
            async with anyio.create_task_group() as load:
                load.start_soon(partial(lab.load, factory, count=1500, duration_s=10))
                await wait_until(lambda: lab.ledger.counts()["acked"] >= 300, 30, what="300 acked")
                kept = lab.server.aof.stat().st_size  # what a host crash now would keep on disk
                cut_at = time.monotonic()
                acked = lab.ledger.counts()["acked"]
                await wait_until(lambda: lab.ledger.counts()["acked"] >= acked + 100, 30, what="100 more")
                lab.server.sigkill()
                killed_at = time.monotonic()
                cut = lab.server.cut_aof(kept)
                await lab.server.restart()
                back_at = time.monotonic()
            await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
            await wait_clients_caught_up(lab.redis, clients, 30)
            verdict = await check(
                lab.redis, lab.ledger, partitions=PARTITIONS, clients=clients, faults=["AOF cut"]
            )
            tg.cancel_scope.cancel()
        counters = {k.decode(): int(v) for k, v in (await lab.redis.hgetall(keys.ingest_recovery())).items()}
        after_cut = [e for e, s in lab.ledger.events.items() if cut_at <= (s.acked_at or 0) <= killed_at]
        print(
            f"\n[AOF cut under load] cut {cut} bytes (writes of the last {killed_at - cut_at:.2f}s before "
            f"the kill: {len(after_cut)} acked events); redis down {back_at - killed_at:.2f}s; "
            f"recovery counters {counters}; {verdict.report()}"
        )
        assert verdict.lost == [], verdict.report()
        assert counters.get("restarts") == 1 and counters.get("reappended", 0) > 0, counters
        assert "are appended again" in api.log_text()
        # a client saw changes Redis then lost; appended again, they come once more (only those)
        lost_seen = {
            f"ws {c.user}#{i}:{gid} x{n}"
            for i, c in enumerate(clients)
            for gid, n in c.duplicates().items()
            if c.first_seen[gid] >= cut_at - CUT_SLACK_S
        }
        assert set(verdict.duplicated) <= lost_seen, verdict.report()
        assert not verdict.unexpected and not verdict.good_dead_lettered, verdict.report()
        assert not verdict.ws_missing and not verdict.ws_disorder, verdict.report()


def test_an_api_that_dies_with_redis_is_reported_with_its_window(tmp_path: Path) -> None:
    anyio.run(_both_crash, tmp_path)


async def _both_crash(tmp_path: Path) -> None:
    """The api and Redis die together: what the cut AOF lost cannot be appended again, but the
    next api to start reports the window, once, and the lost events lie inside it."""
    async with Lab(tmp_path, appendfsync="everysec") as lab:
        first = lab.role("api-1", "api")
        await lab.start(lab.worker("worker-0"), first)
        factory = CommentFactory("aof-both", OWNERS)
        for _ in range(20):
            assert (await lab.post(factory.make())).status == "acked"
        kept = lab.server.aof.stat().st_size
        for _ in range(20):
            assert (await lab.post(factory.make())).status == "acked"
        wall_offset = time.time() - time.monotonic()
        first.kill()
        lab.server.sigkill()
        lab.server.cut_aof(kept)
        await lab.server.restart()
        second = lab.role("api-2", "api")
        await lab.start(second)
        await wait_until(lambda: "possibly lost" in second.log_text(), 30, what="the window reported")
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        verdict = await check(lab.redis, lab.ledger, partitions=PARTITIONS, faults=["api and redis SIGKILL"])
        counters = {k.decode(): int(v) for k, v in (await lab.redis.hgetall(keys.ingest_recovery())).items()}
        [line] = [line for line in second.log_text().splitlines() if "possibly lost" in line]
        print(f"\n[both crash] {verdict.report()}\n  {line}")
        found = re.search(r"between (\S+) and (\S+),", line)
        assert found is not None and "api-1" not in line  # named by its process, not our label
        start, end = (datetime.fromisoformat(t).timestamp() for t in found.groups())
        assert verdict.lost, "the cut lost nothing: the scenario proves nothing"
        acked_wall = [(lab.ledger.events[e].acked_at or 0) + wall_offset for e in verdict.lost]
        assert all(start <= t <= end for t in acked_wall), (start, end, acked_wall)
        assert counters == {"unrecovered": 1}, counters
