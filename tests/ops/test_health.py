"""/livez and /readyz over real HTTP on the services `build_services` makes for a role, started one
by one: each readiness condition missing gives a 503 naming it; all met gives 200."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import httpx
import pytest
from redis.asyncio import Redis

from gateway.hub import Hub
from notifier.cli import build_services
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime import metrics
from notifier.runtime.health import Started
from notifier.runtime.lifecycle import Service
from notifier.runtime.redis import RedisHandle
from notifier.runtime.server import HttpService
from tests.conftest import SettingsFactory
from tests.e2e.harness import running_app

from .scrape import Page

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def readyz(port: int) -> tuple[int, list[str]]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        live = await http.get(f"http://127.0.0.1:{port}/livez")
        assert live.status_code == 200 and live.json() == {"live": True}
        response = await http.get(f"http://127.0.0.1:{port}/readyz")
    body = response.json()
    return response.status_code, body.get("reasons", [])


def one(services: Sequence[Service], kind: type[Service]) -> Service:
    return next(s for s in services if isinstance(s, kind))


async def test_worker_is_ready_once_started_and_its_consumer_group_exists(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    services = build_services("worker", settings_factory(), RedisHandle(redis, True, "test"))
    http, worker, started = one(services, HttpService), one(services, FanoutWorker), one(services, Started)
    assert isinstance(http, HttpService)
    async with anyio.create_task_group() as tg:
        await tg.start(http.run)
        assert await readyz(http.port) == (503, ["services starting"])
        await tg.start(started.run)
        missing = "fanout: consumer group missing on partitions [0, 1, 2, 3]"
        assert await readyz(http.port) == (503, [missing])
        await tg.start(worker.run)
        assert isinstance(worker, FanoutWorker)
        await worker.drain()  # the groups exist once every partition was read
        assert await readyz(http.port) == (200, [])
        started.stop()
        assert await readyz(http.port) == (503, ["stopping"])
        worker.stop()
        http.stop()


async def test_gateway_is_ready_once_its_pubsub_is_subscribed(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    services = build_services("gateway", settings_factory(), RedisHandle(redis, True, "test"))
    http, hub, started = one(services, HttpService), one(services, Hub), one(services, Started)
    assert isinstance(http, HttpService)
    async with anyio.create_task_group() as tg:
        await tg.start(http.run)
        await tg.start(started.run)
        assert await readyz(http.port) == (503, ["pubsub: pub/sub not subscribed"])
        await tg.start(hub.run)
        assert await readyz(http.port) == (200, [])
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            # the gateway alone: plain HTTP at the WebSocket's path is told to upgrade; a path
            # with a trailing slash is a 404 problem, not a redirect
            plain = await client.get(f"http://127.0.0.1:{http.port}/v1/ws")
            assert (plain.status_code, plain.json()["error"]) == (400, "malformed")
            slashed = await client.get(f"http://127.0.0.1:{http.port}/readyz/")
            assert (slashed.status_code, slashed.json()["error"]) == (404, "not_found")
        for service in reversed(services):
            service.stop()


async def test_a_role_whose_redis_does_not_answer_is_not_ready(settings_factory: SettingsFactory) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens there
    services = build_services("jobs", settings_factory(), RedisHandle(dead, True, "test"))
    http, started = one(services, HttpService), one(services, Started)
    assert isinstance(http, HttpService)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(http.run)
            await tg.start(started.run)
            status, reasons = await readyz(http.port)
            assert status == 503 and len(reasons) == 1 and reasons[0].startswith("redis: ConnectionError")
            started.stop()
            http.stop()
    finally:
        await dead.aclose()


async def test_up_serves_one_page_with_every_roles_metrics(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    metrics.use(metrics.Metrics())
    try:
        async with running_app(settings_factory(), redis) as app:
            assert (await app.http.get("/readyz")).status_code == 200
            page = Page((await app.http.get("/metrics")).text)
    finally:
        metrics.use(metrics.DISABLED)
    for family in (
        "notifier_ingest_requests_total",
        "notifier_fanout_lag_entries",
        "notifier_fanout_events_applied_total",
        "notifier_gateway_connections",
        "notifier_gateway_sessions_per_user_count",
        "notifier_jobs_run_total",
        "notifier_moderation_queue_items",
    ):
        assert page.has(family), family
