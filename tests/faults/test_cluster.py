"""The product on a Redis Cluster (3 masters, one replica each), every process real: two of every
role at once through a live slot migration and a killed pub/sub link; pub/sub links killed again
and again (test_redis.py's T-R11); a master SIGKILLed under load (its replica takes over), or
frozen past the node timeout (T-R8); a role started before the cluster exists. The checker
judges."""

from __future__ import annotations

import itertools
import signal
import time
from functools import partial
from pathlib import Path
from typing import Final

import anyio
import pytest
import redis as sync_redis
from redis.crc import key_slot

from loadtest.cluster import ClusterLab, start_nodes
from notifier.runtime.eventlog import partition_of
from schemas import keys

from .checker import Verdict, check
from .clusterlab import ClusterWorld
from .harness import PARTITIONS, SERVICE_KEY, RoleProcess, service_env, wait_until
from .ledger import CommentFactory, drive_load, post_event
from .observers import PushClient, quiesce, start_clients, wait_clients_caught_up
from .test_redis import ANSWER_SLACK_S, slow_answers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

OWNERS: Final = ("alice", "bob", "carol", "dave")
DRAIN_TIMEOUT_S: Final = 90.0
CATCH_UP_TIMEOUT_S: Final = 30.0
CLUSTER_ERRORS: Final = ("CROSSSLOT", "MOVED", "ASK ", "TRYAGAIN", "CLUSTERDOWN")
FROZEN_S: Final = 3.0  # a master paused this long is failed over (node timeout 1 s)


async def settle(lab: ClusterWorld, clients: list[PushClient], fault: str) -> Verdict:
    await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
    await wait_clients_caught_up(lab.redis, clients, CATCH_UP_TIMEOUT_S)
    return await check(lab.redis, lab.ledger, partitions=PARTITIONS, clients=clients, faults=[fault])


def slot_of_partition(partition: int) -> int:
    return int(key_slot(keys.events(partition).encode()))


def cluster_errors_logged(lab: ClusterWorld) -> dict[str, list[str]]:
    """Log lines of any role that name a cluster redirection or a cross-slot refusal."""
    found: dict[str, list[str]] = {}
    for role in lab.roles.values():
        lines = [line for line in role.log_text().splitlines() if any(e in line for e in CLUSTER_ERRORS)]
        if lines:
            found[role.name] = lines[:5]
    return found


def test_two_of_every_role_through_a_slot_migration_and_a_killed_pubsub_link(
    tmp_path: Path, redis_cluster: ClusterLab, redis_url: str
) -> None:
    anyio.run(_two_of_every_role, tmp_path, redis_cluster, redis_url)


async def _two_of_every_role(tmp_path: Path, cluster: ClusterLab, jobs_url: str) -> None:
    async with ClusterWorld(tmp_path, cluster, jobs_url) as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(2)]
        api1, api2 = lab.role("api-1", "api"), lab.second("api-2", "api")
        gw1, gw2 = lab.role("gateway-1", "gateway"), lab.second("gateway-2", "gateway")
        jobs = lab.role("jobs", "jobs")
        await lab.start(*workers, api1, api2, gw1, gw2, jobs)
        ws2 = f"ws://127.0.0.1:{gw2.port}/v1/ws"
        http2 = lab.http_client(api2.port)
        clients = [
            PushClient("alice", lab.ws_url, lab.http, lab.token("alice")),
            PushClient("alice", ws2, http2, lab.token("alice")),  # one user, a socket on each gateway
            PushClient("bob", lab.ws_url, lab.http, lab.token("bob")),
            PushClient("carol", ws2, http2, lab.token("carol")),
            PushClient("dave", ws2, lab.http, lab.token("dave")),
        ]
        alice_slot = key_slot(keys.user_channel("alice").encode())
        partition_slot = key_slot(keys.events(0).encode())
        moved: list[int] = []
        try:
            async with anyio.create_task_group() as tg:
                await start_clients(tg, clients)
                async with anyio.create_task_group() as load:
                    one = CommentFactory("c1", OWNERS)
                    two = CommentFactory("c2", OWNERS)
                    load.start_soon(partial(lab.load, one, count=300, duration_s=8, rate_per_s=40))
                    load.start_soon(
                        partial(
                            drive_load,
                            http2,
                            lab.ledger,
                            two,
                            SERVICE_KEY,
                            count=300,
                            duration_s=8,
                            rate_per_s=40,
                        )
                    )
                    await wait_until(lambda: lab.ledger.counts()["acked"] >= 100, 30, what="100 acked")
                    for slot in (alice_slot, partition_slot):  # live, under load: MOVED, ASK, TRYAGAIN
                        owner = cluster.node_of_slot(slot)
                        target = next(m for m in cluster.masters() if m is not owner)
                        moved.append(await anyio.to_thread.run_sync(cluster.move_slot, slot, target))
                    await wait_until(lambda: lab.ledger.counts()["acked"] >= 300, 30, what="300 acked")
                    owner = cluster.node_of_slot(key_slot(keys.user_channel("bob").encode()))
                    killed = owner.ask("CLIENT", "KILL", "TYPE", "pubsub")  # both gateways' link to it
                verdict = await settle(lab, clients, "slot migration + CLIENT KILL TYPE pubsub")
                tg.cancel_scope.cancel()
        finally:
            await http2.aclose()
        print(
            f"\n[cluster: 2 api, 2 workers, 2 gateways, jobs] moved slots {alice_slot} and "
            f"{partition_slot} ({moved} keys) under load; killed {killed} pub/sub links; "
            f"statuses {dict(lab.ledger.histogram())}; {verdict.report()}"
        )
        assert verdict.clean, verdict.report()
        assert verdict.acked == 600 and verdict.rejected == verdict.indeterminate == 0
        assert set(lab.ledger.histogram()) == {"202"}
        assert killed >= 1  # the links holding bob's subscription (a link with none is no pub/sub client)
        assert all(role.alive for role in lab.roles.values())
        assert not cluster_errors_logged(lab), cluster_errors_logged(lab)
        # both of alice's sockets (one per gateway) saw every change of her inbox
        assert clients[0].seen == clients[1].seen and clients[0].seen


def test_pubsub_links_killed_one_master_at_a_time_clients_miss_nothing(
    tmp_path: Path, redis_cluster: ClusterLab, redis_url: str
) -> None:
    """T-R11 of test_redis.py on the cluster: the gateway repairs each killed link alone."""
    anyio.run(_pubsub_killed, tmp_path, redis_cluster, redis_url)


async def _pubsub_killed(tmp_path: Path, cluster: ClusterLab, jobs_url: str) -> None:
    async with ClusterWorld(tmp_path, cluster, jobs_url) as lab:
        gateway = lab.role("gateway", "gateway")
        await lab.start(lab.worker("worker-0"), lab.role("api", "api"), gateway)
        users = (OWNERS[0], OWNERS[0], *OWNERS[1:])
        clients = [PushClient(u, lab.ws_url, lab.http, lab.token(u)) for u in users]
        factory = CommentFactory("r11c", OWNERS)
        masters = cluster.masters()
        struck = itertools.count()

        async def kill_one_masters_links() -> int:
            return int(masters[next(struck) % len(masters)].ask("CLIENT", "KILL", "TYPE", "pubsub"))

        async with anyio.create_task_group() as tg:
            await start_clients(tg, clients)
            kills = await lab.load_under(kill_one_masters_links, factory, count=600, duration_s=8, pace_s=0.3)
            verdict = await settle(lab, clients, f"{kills} pub/sub links killed, one master at a time")
            tg.cancel_scope.cancel()
        print(
            f"\n[T-R11, cluster] {kills} pub/sub links killed, one master at a time; client reconnects "
            f"{[c.connects - 1 for c in clients]}; {verdict.report()}"
        )
        assert kills >= 5
        assert gateway.alive
        assert verdict.clean, verdict.report()
        assert not cluster_errors_logged(lab), cluster_errors_logged(lab)
        assert clients[0].seen == clients[1].seen and clients[0].seen


@pytest.mark.parametrize("wait_replicas", [1, 0])
def test_a_master_killed_under_load_fails_over(
    tmp_path: Path, redis_cluster: ClusterLab, redis_url: str, wait_replicas: int
) -> None:
    anyio.run(_master_killed, tmp_path, redis_cluster, redis_url, wait_replicas)


async def _master_killed(tmp_path: Path, cluster: ClusterLab, jobs_url: str, wait_replicas: int) -> None:
    overrides = {
        "NOTIFIER_INGEST_WAIT_REPLICAS": str(wait_replicas),
        "NOTIFIER_INGEST_WAIT_TIMEOUT_MS": "500",
    }
    async with ClusterWorld(tmp_path, cluster, jobs_url, overrides=overrides) as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(2)]
        api, gateway = lab.role("api", "api"), lab.role("gateway", "gateway")
        await lab.start(*workers, api, gateway)
        clients = [PushClient(u, lab.ws_url, lab.http, lab.token(u)) for u in OWNERS[:2]]
        victim = cluster.node_of_slot(key_slot(keys.events(0).encode()))
        async with anyio.create_task_group() as tg:
            await start_clients(tg, clients)
            async with anyio.create_task_group() as load:
                factory = CommentFactory(f"k{wait_replicas}", OWNERS)
                load.start_soon(
                    partial(lab.load, factory, count=500, duration_s=12, rate_per_s=40, retries=8)
                )
                await wait_until(lambda: lab.ledger.counts()["acked"] >= 100, 30, what="100 acked")
                cluster.kill(victim)
                killed_at = time.monotonic()
                await anyio.to_thread.run_sync(cluster.wait_ok)  # its replica took over
                promoted_at = time.monotonic()
                await anyio.to_thread.run_sync(cluster.start, victim)  # back, as a replica
                await anyio.to_thread.run_sync(cluster.wait_ok)
            verdict = await settle(lab, clients, f"master SIGKILL (WAIT {wait_replicas})")
            tg.cancel_scope.cancel()
        during = lab.ledger.histogram(killed_at, promoted_at + 1)
        refused = [a for a in lab.ledger.attempts if a.http_status == 503]
        acked_at = {s.event_id: s.acked_at or 0.0 for s in lab.ledger.events.values()}
        print(
            f"\n[cluster failover, WAIT {wait_replicas}] replica promoted {promoted_at - killed_at:.2f}s "
            f"after the SIGKILL; statuses meanwhile {dict(during)}; {verdict.report()}"
        )
        for c in clients:  # where a client stopped, if it did
            print(
                f"  {c.user}: {c.connects} connects, {len(c.changes)} changes to {c.cursor}, drops {c.drops}"
            )
        for event_id in verdict.lost:  # the loss window without WAIT: reported, never silent
            print(f"  LOST {event_id}: acked {killed_at - acked_at[event_id]:.3f}s before the kill")
        assert set(lab.ledger.histogram()) <= {"202", "503"}, lab.ledger.histogram()
        assert all(a.retry_after for a in refused)
        assert all(role.alive for role in lab.roles.values())
        others = (verdict.duplicated, verdict.unexpected, verdict.good_dead_lettered, verdict.ws_disorder)
        assert not any(others), verdict.report()
        if wait_replicas:
            assert verdict.clean, verdict.report()  # a 202 waited for a replica: nothing lost
        else:
            assert all(killed_at - 1.0 <= acked_at[e] <= killed_at for e in verdict.lost), verdict.report()


def test_a_frozen_master_answers_503_within_budget_then_fails_over(
    tmp_path: Path, redis_cluster: ClusterLab, redis_url: str
) -> None:
    """T-R8 of test_redis.py on the cluster: a master SIGSTOPped past the node timeout. Its
    partitions answer 503 within the ingest budget, its replica is promoted, and when it thaws
    (demoted) the appends queued on its sockets meet WAIT with no replica: 503, never a 202 lost."""
    anyio.run(_master_frozen, tmp_path, redis_cluster, redis_url)


async def _master_frozen(tmp_path: Path, cluster: ClusterLab, jobs_url: str) -> None:
    overrides = {
        "NOTIFIER_INGEST_TIMEOUT_S": "0.5",
        "NOTIFIER_INGEST_WAIT_REPLICAS": "1",
        "NOTIFIER_INGEST_WAIT_TIMEOUT_MS": "500",
    }
    async with ClusterWorld(tmp_path, cluster, jobs_url, overrides=overrides) as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(2)]
        await lab.start(*workers, lab.role("api", "api"), lab.role("gateway", "gateway"))
        clients = [PushClient(u, lab.ws_url, lab.http, lab.token(u)) for u in OWNERS[:2]]
        victim = cluster.node_of_slot(key_slot(keys.events(0).encode()))
        assert victim.proc is not None
        budget_s = 0.5 + ANSWER_SLACK_S
        factory = CommentFactory("r8c", OWNERS)
        healthy = factory.make()  # an event of a partition on another master
        while cluster.node_of_slot(slot_of_partition(partition_of(healthy["actor"], PARTITIONS))) is victim:
            healthy = factory.make()
        async with anyio.create_task_group() as tg:
            await start_clients(tg, clients)
            async with anyio.create_task_group() as load:
                load.start_soon(
                    partial(lab.load, factory, count=500, duration_s=12, rate_per_s=40, retries=8)
                )
                await wait_until(lambda: lab.ledger.counts()["acked"] >= 100, 30, what="100 acked")
                victim.proc.send_signal(signal.SIGSTOP)
                frozen_at = time.monotonic()
                # (the load's posters soon all wait on retries of the frozen master's events)
                probe = await post_event(lab.http, lab.ledger, healthy, SERVICE_KEY)
                await anyio.sleep(max(0.0, frozen_at + FROZEN_S - time.monotonic()))  # past the node timeout
                victim.proc.send_signal(signal.SIGCONT)
                thawed_at = time.monotonic()
                await anyio.to_thread.run_sync(cluster.wait_ok)  # promoted, and the old one its replica
            verdict = await settle(lab, clients, f"master SIGSTOP {FROZEN_S}s")
            tg.cancel_scope.cancel()
        slow = slow_answers(lab.ledger, frozen_at, thawed_at, budget_s)
        print(
            f"\n[T-R8, cluster] a master frozen {thawed_at - frozen_at:.2f}s; statuses meanwhile "
            f"{dict(lab.ledger.histogram(frozen_at, thawed_at))}; slowest answer "
            f"{max(a.latency_s for a in lab.ledger.attempts):.2f}s (budget {budget_s:.2f}s); another "
            f"master's event {probe.status} in {probe.latency_s:.2f}s; {verdict.report()}"
        )
        assert set(lab.ledger.histogram()) <= {"202", "503"}, lab.ledger.histogram()
        assert probe.status == "acked", probe  # the other masters kept accepting
        assert not slow, slow
        assert all(role.alive for role in lab.roles.values())
        assert verdict.clean, verdict.report()


def test_a_role_started_before_the_cluster_exists_waits_then_works(tmp_path: Path, redis_url: str) -> None:
    anyio.run(_forming, tmp_path, redis_url)


async def _forming(tmp_path: Path, jobs_url: str) -> None:
    forming = start_nodes(tmp_path / "cluster", masters=3, replicas=0)
    try:
        env = service_env(forming.url, {"NOTIFIER_REDIS_CLUSTER": "1", "NOTIFIER_JOBS_REDIS_URL": jobs_url})
        worker = RoleProcess("worker", "worker", {**env, "NOTIFIER_FANOUT_CONSUMER": "w"}, tmp_path / "w.log")
        worker.spawn()
        try:
            await wait_until(
                lambda: "redis unavailable in startup checks" in worker.log_text(), 60, what="worker waiting"
            )
            assert worker.alive
            await anyio.to_thread.run_sync(forming.create, 0)
            await worker.wait_ready()
            seeds = forming.nodes[0]
            with sync_redis.Redis(port=seeds.port) as probe:
                probe.execute_command("PING")
            # the worker created its consumer group on every partition, each on its master
            for p in range(PARTITIONS):
                node = forming.node_of_slot(key_slot(keys.events(p).encode()))
                stream = keys.events(p)  # awaited within this iteration: the closure sees its own
                await wait_until(lambda: node.ask("EXISTS", stream) == 1, 30, what=f"partition {p}")  # noqa: B023
        finally:
            worker.kill()
        assert "Traceback" not in worker.log_text(), worker.log_text()[-3000:]
    finally:
        forming.stop()
