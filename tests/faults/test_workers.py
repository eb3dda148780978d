"""Worker faults (RELIABILITY.md T-F1, T-F3, T-F4, T-F7): kill, stop, poison, all workers down."""

from __future__ import annotations

import signal
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Final

import anyio
import pytest

from schemas import keys

from .checker import check
from .harness import PARTITIONS, SERVICE_KEY, Lab, wait_until
from .inject import kill_holding_entries
from .ledger import CommentFactory
from .observers import dead_letters, has_group, partition_backlogs, pending_of, quiesce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OWNERS: Final = ("alice", "bob", "carol", "dave")
DRAIN_TIMEOUT_S: Final = 90.0


def test_sigkill_worker_mid_batch_is_reclaimed(tmp_path: Path) -> None:
    anyio.run(_sigkill_worker, tmp_path)


async def _sigkill_worker(tmp_path: Path) -> None:
    async with Lab(tmp_path) as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(3)]
        await lab.start(*workers, lab.role("api", "api"))
        victim = workers[1]
        factory = CommentFactory("f1", OWNERS)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(lab.load, factory, count=1500, duration_s=15))
            await wait_until(lambda: lab.ledger.counts()["acked"] >= 400, 30, what="400 events acked")
            held = await kill_holding_entries(lab.redis, victim, PARTITIONS, timeout_s=30)
            killed_at = time.monotonic()
            assert held, "the victim held nothing when killed"

            async def victim_released() -> bool:
                return not await pending_of(lab.redis, PARTITIONS, victim.name)

            reclaim_s = await wait_until(victim_released, 30, what="the victim's entries reclaimed")
        drain_s = await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        verdict = await check(lab.redis, lab.ledger, partitions=PARTITIONS, faults=[f"SIGKILL {victim.name}"])
        print(
            f"\n[T-F1] killed {victim.name} holding {len(held)} entries; reclaimed in {reclaim_s:.2f}s "
            f"after the kill, drained {drain_s:.2f}s after the load; "
            f"{verdict.report()} (kill at +{killed_at - lab.ledger.attempts[0].started:.1f}s)"
        )
        assert verdict.clean, verdict.report()
        assert all(w.alive for w in workers if w is not victim)


def test_sigterm_worker_exits_clean_with_nothing_pending(tmp_path: Path) -> None:
    anyio.run(_sigterm_worker, tmp_path)


async def _sigterm_worker(tmp_path: Path) -> None:
    async with Lab(tmp_path) as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(2)]
        await lab.start(*workers, lab.role("api", "api"))
        leaving = workers[0]
        factory = CommentFactory("f3", OWNERS)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(lab.load, factory, count=1200, duration_s=12))

            async def busy() -> bool:
                return bool(await pending_of(lab.redis, PARTITIONS, leaving.name))

            await wait_until(busy, 30, what=f"{leaving.name} holding a batch", interval_s=0.002)
            leaving.send(signal.SIGTERM)
            stop_began = time.monotonic()
            code = await leaving.wait_exit()
            stop_s = time.monotonic() - stop_began
            left_pending = await pending_of(lab.redis, PARTITIONS, leaving.name)
        drain_s = await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        faults = [f"SIGTERM {leaving.name}"]
        verdict = await check(lab.redis, lab.ledger, partitions=PARTITIONS, faults=faults)
        print(
            f"\n[T-F3] SIGTERM {leaving.name}: exit {code} in {stop_s:.2f}s, pending at exit "
            f"{len(left_pending)}; drained {drain_s:.2f}s after the load; {verdict.report()}"
        )
        assert code == 0, leaving.log_text()[-3000:]
        assert left_pending == []
        assert verdict.clean, verdict.report()


def test_poison_event_is_dead_lettered_without_blocking_the_rest(tmp_path: Path) -> None:
    anyio.run(_poison, tmp_path)


async def _poison(tmp_path: Path) -> None:
    max_deliveries = 3
    async with Lab(tmp_path, overrides={"NOTIFIER_FANOUT_MAX_DELIVERIES": str(max_deliveries)}) as lab:
        await lab.start(lab.worker("worker-0"), lab.worker("worker-1"), lab.role("api", "api"))
        poisoned = "mallory"
        await lab.redis.set(keys.inbox(poisoned), "not a sorted set")  # every apply for her fails
        factory = CommentFactory("f4", OWNERS)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(lab.load, factory, count=1000, duration_s=15))
            await wait_until(lambda: len(lab.ledger.events) >= 300, 30, what="300 events sent")
            poison = factory.make(owner=poisoned)
            attempt = await lab.post(poison)
            assert attempt.status == "acked", attempt

            async def dead_lettered() -> bool:
                return any(d.event_id == poison["id"] for d in await dead_letters(lab.redis, PARTITIONS))

            dead_s = await wait_until(dead_lettered, 60, what="the poison event dead-lettered")
        drain_s = await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        letters = await dead_letters(lab.redis, PARTITIONS)
        verdict = await check(
            lab.redis, lab.ledger, partitions=PARTITIONS, skip_users=[poisoned], poison=[poison["id"]]
        )
        print(
            f"\n[T-F4] poison dead-lettered {dead_s:.2f}s after its ack: {letters}; "
            f"drained {drain_s:.2f}s after the load; {verdict.report()}"
        )
        assert [d.event_id for d in letters] == [poison["id"]]
        assert letters[0].deliveries == max_deliveries
        assert "WRONGTYPE" in letters[0].error
        assert verdict.clean, verdict.report()
        assert verdict.delivered == verdict.acked - 1  # everything but the poison


def test_poison_storm_each_entry_dead_lettered_exactly_once(tmp_path: Path) -> None:
    anyio.run(_poison_storm, tmp_path)


async def _poison_storm(tmp_path: Path) -> None:
    """Three workers reclaim in overlapping passes: each hopeless entry must move once."""
    overrides = {"NOTIFIER_FANOUT_CLAIM_INTERVAL_MS": "50", "NOTIFIER_FANOUT_MIN_IDLE_MS": "300"}
    async with Lab(tmp_path, overrides=overrides) as lab:
        await lab.start(*[lab.worker(f"worker-{i}") for i in range(3)], lab.role("api", "api"))
        poisoned = "mallory"
        await lab.redis.set(keys.inbox(poisoned), "not a sorted set")
        await lab.load(CommentFactory("f4s", [poisoned]), count=200, duration_s=10, rate_per_s=100)
        drain_s = await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        letters = await dead_letters(lab.redis, PARTITIONS)
        copies = Counter(d.event_id for d in letters)
        print(
            f"\n[T-F4 storm] {len(lab.ledger.events)} poison events, {len(letters)} dead letters, "
            f"drained {drain_s:.2f}s after the load; moved more than once: "
            f"{ {e: n for e, n in copies.items() if n > 1} }"
        )
        assert lab.ledger.counts()["acked"] == len(lab.ledger.events)
        assert sorted(copies) == sorted(lab.ledger.events)
        assert set(copies.values()) == {1}


def test_all_workers_down_ingest_refuses_past_backlog_then_recovers(tmp_path: Path) -> None:
    anyio.run(_all_workers_down, tmp_path)


async def _all_workers_down(tmp_path: Path) -> None:
    max_backlog = 200
    overrides = {
        "NOTIFIER_INGEST_MAX_BACKLOG": str(max_backlog),
        "NOTIFIER_INGEST_PRESSURE_INTERVAL_MS": "50",
    }
    async with Lab(tmp_path, overrides=overrides) as lab:
        worker = lab.worker("worker-0")
        await lab.start(worker, lab.role("api", "api"))

        async def groups_exist() -> bool:
            return all([await has_group(lab.redis, p) for p in range(PARTITIONS)])

        await wait_until(groups_exist, 30, what="the fan-out group on every partition")
        worker.send(signal.SIGTERM)
        assert await worker.wait_exit() == 0
        down_at = time.monotonic()

        factory = CommentFactory("f7", OWNERS)
        refusing = anyio.Event()

        async def watch_refusals() -> None:
            await wait_until(lambda: lab.ledger.histogram()["503"] >= 50, 60, what="50 refusals")
            refusing.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_refusals)
            await lab.load(factory, count=5000, duration_s=40, rate_per_s=300, stop=refusing)
        refusals = [a for a in lab.ledger.attempts if a.http_status == 503]
        first_refusal = min(a.started for a in refusals)
        refusing_since = min(a.ended for a in refusals)  # the server refuses from here on, at the latest
        before = [a for a in lab.ledger.attempts if a.ended < first_refusal]
        after = [a for a in lab.ledger.attempts if a.started > refusing_since]
        acked_before = sum(a.status == "acked" for a in before)
        backlog_when_refusing = await partition_backlogs(lab.redis, PARTITIONS)
        assert max(backlog_when_refusing) > max_backlog
        assert acked_before > max_backlog, "refused before any partition's backlog passed the limit"
        assert all(a.http_status == 503 and a.outcome == "backlog" for a in after), lab.ledger.histogram(
            refusing_since
        )
        assert all(a.retry_after for a in lab.ledger.attempts if a.http_status == 503)

        restarted_at = time.monotonic()
        await worker.start()
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        drain_s = time.monotonic() - restarted_at

        async def accepting() -> bool:
            return (await lab.post(factory.make())).status == "acked"

        accept_s = await wait_until(accepting, 30, what="ingest accepting again", interval_s=0.05)
        await lab.load(factory, count=200, duration_s=10)
        await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
        verdict = await check(lab.redis, lab.ledger, partitions=PARTITIONS, faults=["all workers down"])
        print(
            f"\n[T-F7] workers down {restarted_at - down_at:.1f}s; {acked_before} acked before the first "
            f"503 (backlog per partition then {backlog_when_refusing}); "
            f"{len(after)} refused after it, all 503 "
            f"backlog with Retry-After; after restart drained in {drain_s:.2f}s, accepting again "
            f"{drain_s + accept_s:.2f}s after restart; {verdict.report()}"
        )
        assert verdict.clean, verdict.report()


def test_sigterm_with_a_drain_keeps_serving_while_not_ready(tmp_path: Path) -> None:
    anyio.run(_drained, tmp_path)


async def _drained(tmp_path: Path) -> None:
    """NOTIFIER_HTTP_DRAIN_S: after SIGTERM the api says `stopping` on /readyz and still answers
    (ingest included) for that long, so a load balancer takes it out before its port closes."""
    async with Lab(tmp_path) as lab:
        api = lab.role("api", "api", {"NOTIFIER_HTTP_DRAIN_S": "2"})
        await lab.start(api)
        assert (await lab.http.get("/readyz")).status_code == 200
        api.send(signal.SIGTERM)

        async def stopping() -> bool:
            answer = await lab.http.get("/readyz")
            return answer.status_code == 503 and answer.json()["reasons"] == ["stopping"]

        await wait_until(stopping, 5, what="/readyz says stopping")
        assert (await lab.http.get("/livez")).status_code == 200
        posted = await lab.http.post(
            "/v1/events",
            content=b'{"type": "follow", "id": "drain-1", "actor": "ann", "user": "bob", '
            b'"occurred_at": "2026-01-01T00:00:00Z"}',
            headers={"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"},
        )
        assert posted.status_code == 202, posted.text  # still taking work while draining
        assert api.alive
        assert await api.wait_exit() == 0
