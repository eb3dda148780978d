"""Every role's /metrics, /livez and /readyz over real HTTP, on real processes after real traffic:
the numbers move as they should (ingest counts, apply counts, push latency, lag rising while
the workers are away and falling when they return, a slow consumer's close)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schemas import keys
from schemas.errors import CODES, Reason
from tests.faults.harness import SERVICE_KEY, Lab, free_port, wait_until

from .scrape import Page, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}


def like(n: int, owner: str) -> dict[str, str]:
    now = datetime.now(UTC).isoformat()
    return {
        "type": "like",
        "id": f"m-{n}",
        "actor": f"fan{n}",
        "post": "p1",
        "owner": owner,
        "occurred_at": now,
    }


async def authed(lab: Lab, user: str) -> ClientConnection:
    ws = await connect(lab.ws_url, proxy=None, open_timeout=10, close_timeout=2, compression=None)
    await ws.send(orjson.dumps({"type": "auth", "token": lab.token(user)}).decode())
    with anyio.fail_after(10):
        ready = orjson.loads(await ws.recv())
    assert ready["type"] == "ready", ready
    return ws


async def probe(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        return await http.get(f"http://127.0.0.1:{port}{path}")


def test_every_role_serves_metrics_that_move_with_traffic(tmp_path: Path) -> None:
    anyio.run(_every_role, tmp_path)


async def _every_role(tmp_path: Path) -> None:
    worker_port, jobs_port = free_port(), free_port()
    async with Lab(tmp_path, appendonly=False, overrides={"NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES": "2"}) as lab:
        api, gateway = lab.role("api", "api"), lab.role("gateway", "gateway")
        # the direct apply on: a listened user's item goes to the script, the others' do not
        direct = {"NOTIFIER_FANOUT_DIRECT_APPLY": "1"}
        worker = lab.worker("w1", {"NOTIFIER_METRICS_PORT": str(worker_port), **direct})
        jobs = lab.role("jobs", "jobs", {"NOTIFIER_METRICS_PORT": str(jobs_port)})
        await lab.start(api, gateway, worker, jobs)
        ports = {"api": lab.api_port, "gateway": lab.gateway_port, "worker": worker_port, "jobs": jobs_port}
        for role, port in ports.items():
            assert (await probe(port, "/livez")).status_code == 200, role
            ready = await probe(port, "/readyz")
            assert ready.status_code == 200 and ready.json() == {"ready": True}, (role, ready.text)
            assert ready.headers["x-request-id"]

        # a live push: accepted by the api, applied by the worker, pushed by the gateway
        olga = await authed(lab, "olga")
        response = await lab.http.post("/v1/events", content=orjson.dumps(like(1, "olga")), headers=HEADERS)
        assert response.status_code == 202, response.text
        with anyio.fail_after(15):
            assert orjson.loads(await olga.recv())["type"] == "change"
        bad = await lab.http.post("/v1/events", content=b'{"type": "like"}', headers=HEADERS)
        assert bad.status_code == 422

        page = await scrape(lab.api_port)
        assert page.value("notifier_ingest_requests_total", result="accepted") == 1
        assert page.value("notifier_ingest_requests_total", result="rejected") == 1
        assert page.value("notifier_ingest_events_total", result="accepted") == 1
        assert page.value("notifier_ingest_events_total", result="rejected", reason="invalid") == 1
        assert page.value("notifier_ingest_append_seconds_count") == 1
        assert page.value("notifier_ingest_backpressure") == 0

        page = await scrape(worker_port)
        assert page.value("notifier_fanout_events_applied_total") == 1
        assert page.value("notifier_fanout_items_applied_total") == 1
        assert page.value("notifier_fanout_direct_items_total", path="listened") == 1
        assert page.value("notifier_fanout_apply_seconds_count") >= 1
        for phase in ("screen", "preferences", "inbox", "feeds", "ack"):  # each batch's, in turn
            assert page.value("notifier_fanout_phase_seconds_count", phase=phase) >= 1, phase
        assert set(page.labelled("notifier_fanout_lag_entries", "partition")) == {"0", "1", "2", "3"}
        assert page.value("notifier_fanout_pending_entries") == 0

        # a held comment: counted by rule and action, and waiting in the review queue
        now = datetime.now(UTC).isoformat()
        held = {"type": "comment", "id": "m-held", "actor": "troll", "post": "p1", "owner": "olga",
                "comment": "k1", "text": "kill yourself", "occurred_at": now}  # fmt: skip
        response = await lab.http.post("/v1/events", content=orjson.dumps(held), headers=HEADERS)
        assert response.status_code == 202, response.text
        await wait_until(lambda: _held(worker_port), 15, what="the held comment counted", interval_s=0.1)

        page = await scrape(lab.gateway_port)
        assert page.value("notifier_gateway_connections") == 1
        assert page.value("notifier_gateway_sessions") == 1
        assert page.value("notifier_gateway_sessions_per_user_bucket", le="1.0") == 1
        assert page.value("notifier_gateway_frames_sent_total", kind="live") == 1
        assert page.value("notifier_gateway_push_latency_seconds_count") == 1
        assert 0 < page.value("notifier_gateway_push_latency_seconds_sum") < 15

        jobs_page = await scrape(jobs_port)
        assert jobs_page.has("notifier_jobs_run_total") and jobs_page.has(
            "notifier_moderation_outbox_effects"
        )
        # each role exports its own families only (README "Metrics"), never another's as zeros
        pages = {role: await scrape(port) for role, port in ports.items()}
        foreign = {
            "api": ("notifier_gateway_", "notifier_fanout_apply", "notifier_moderation_"),
            "worker": ("notifier_gateway_", "notifier_ingest_", "notifier_moderation_outbox"),
            "gateway": ("notifier_ingest_", "notifier_fanout_", "notifier_moderation_"),
            "jobs": ("notifier_gateway_", "notifier_ingest_", "notifier_fanout_"),
        }
        for role, prefixes in foreign.items():
            names = {s.name for s in pages[role].samples}
            assert not {n for n in names if n.startswith(prefixes)}, role
            assert any(n.startswith("notifier_redis_") for n in names) or role == "gateway", role
        await wait_until(
            lambda: _jobs_ran(jobs_port), 30, what="the outbox sweep counted as a job run", interval_s=0.2
        )

        # lag rises while no worker reads (the api's page keeps it), falls when one returns
        worker.send(signal.SIGTERM)
        assert await worker.wait_exit() == 0
        for n in range(2, 7):
            body = orjson.dumps(like(n, "nobody"))
            assert (await lab.http.post("/v1/events", content=body, headers=HEADERS)).status_code == 202
        page = await scrape(lab.api_port)
        assert page.value("notifier_fanout_lag_entries") == 5
        await worker.start()
        await wait_until(lambda: _lag(worker_port, 0), 30, what="lag back to 0", interval_s=0.1)
        page = await scrape(worker_port)
        assert page.value("notifier_fanout_events_applied_total") == 5
        # nobody listens: every item direct, or the script's when a batch of another partition
        # wrote the same user between this one's reads and its commit
        paths = page.labelled("notifier_fanout_direct_items_total", "path")
        assert sum(paths.values()) == 5 and set(paths) <= {"direct", "conflict"}, paths
        assert paths["direct"] >= 1, paths

        # Redis drops the worker's connections: a failed round trip, then a recovery, counted
        assert await lab.redis.client_kill_filter(_type="normal", skipme=True) > 0
        await wait_until(lambda: _recovered(worker_port), 30, what="redis errors and reconnects counted")

        # a client whose queue overflows is closed as a slow consumer, and counted
        sam = await authed(lab, "sam")
        burst = [f"{i}.{i}-0 " + '{"op":"read","all":true,"unread":0}' for i in range(1, 400)]
        async with lab.redis.pipeline(transaction=False) as pipe:
            for message in burst:
                pipe.publish(keys.user_channel("sam"), message)
            await pipe.execute()
        with anyio.fail_after(15), pytest.raises(ConnectionClosed) as closed:
            while True:
                await sam.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CODES[Reason.SLOW_CONSUMER].ws_close
        page = await scrape(lab.gateway_port)
        assert page.value("notifier_gateway_closes_total", reason="slow_consumer") == 1
        assert (
            page.value("notifier_gateway_closes_total", code=str(CODES[Reason.SLOW_CONSUMER].ws_close)) == 1
        )
        await olga.close()
        await wait_until(lambda: _closed_by_client(lab.gateway_port), 10, what="client close counted")


async def _jobs_ran(port: int) -> bool:
    return (await scrape(port)).value("notifier_jobs_run_total") >= 1


async def _held(port: int) -> bool:
    page = await scrape(port)
    held = page.value("notifier_moderation_actions_total", rule="blocklist", action="hold")
    return (
        held == 1
        and page.value("notifier_moderation_queue_items") == 1
        and (page.value("notifier_moderation_oldest_waiting_age_seconds") >= 0)
    )


async def _recovered(port: int) -> bool:
    page = await scrape(port)
    errors = page.value("notifier_redis_errors_total", component="fanout partition")
    return errors >= 1 and page.value("notifier_redis_reconnects_total", component="fanout partition") >= 1


async def _lag(port: int, expected: float) -> bool:
    page: Page = await scrape(port)
    return (
        page.value("notifier_fanout_lag_entries") + page.value("notifier_fanout_pending_entries") == expected
    )


async def _closed_by_client(port: int) -> bool:
    page = await scrape(port)
    return page.value("notifier_gateway_closes_total", reason="client") == 1 and (
        page.value("notifier_gateway_connections") == 0
    )
