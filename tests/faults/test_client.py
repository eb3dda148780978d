"""The Python client (notifier.client) through the faults that matter to it, every process real:
a gateway restart (it resumes from its cursor, no reload) and a Redis restart that loses the data
(it is told to refetch, reloads over REST, and follows on)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
import pytest

from notifier.client import Inbox, InboxClient

from .harness import PARTITIONS, SERVICE_KEY, Lab, wait_until
from .observers import has_group

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

WAIT_S: Final = 60.0  # process starts on a busy two-core machine
USER: Final = "uli"


def like(n: int) -> bytes:
    at = datetime(2026, 1, 1, 12, 0, n, tzinfo=UTC).isoformat()
    event = {
        "type": "like",
        "id": f"l-{n}",
        "actor": "fan",
        "occurred_at": at,
        "post": f"p-{n}",
        "owner": USER,
    }
    return orjson.dumps(event)


def test_the_client_rides_out_gateway_and_redis_restarts(tmp_path: Path) -> None:
    anyio.run(_restarts, tmp_path)


async def _restarts(tmp_path: Path) -> None:
    async with Lab(tmp_path, appendonly=False) as lab:
        worker, api, gateway = lab.worker("worker-0"), lab.role("api", "api"), lab.role("gateway", "gateway")
        await lab.start(worker, api, gateway)
        loads: list[dict[str, Any]] = []
        posts: dict[str, anyio.Event] = {}

        async def token() -> str:
            return lab.token(USER)

        async def load() -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {lab.token(USER)}"}
            response = await lab.http.get("/v1/me/notifications?limit=100", headers=headers)
            assert response.status_code == 200, response.text
            loads.append(response.json())
            return loads[-1]

        def on_change(inbox: Inbox) -> None:
            for group in inbox.groups.values():
                posts.setdefault(group["post"], anyio.Event()).set()

        async def post_and_see(n: int) -> None:
            headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}
            response = await lab.http.post("/v1/events", content=like(n), headers=headers)
            assert response.status_code == 202, response.text
            with anyio.fail_after(WAIT_S):
                await posts.setdefault(f"p-{n}", anyio.Event()).wait()

        client = InboxClient(lab.ws_url, token, load, on_change=on_change, backoff_cap_s=1.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.run)
            with anyio.fail_after(WAIT_S):
                await client.ready.wait()
            await post_and_see(1)

            gateway.send(signal.SIGTERM)  # closes its sessions with a reconnect hint
            await gateway.wait_exit()
            headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}
            assert (await lab.http.post("/v1/events", content=like(2), headers=headers)).status_code == 202
            await gateway.start()
            with anyio.fail_after(WAIT_S):
                await posts.setdefault("p-2", anyio.Event()).wait()  # resumed: replayed from its cursor
            assert len(loads) == 1 and client.closes and client.closes[0] not in (4400, 4401, 4403)

            lab.server.sigkill()
            await lab.server.restart()  # nothing persisted: the change log's epoch is new

            async def groups_exist() -> bool:
                return all([await has_group(lab.redis, p) for p in range(PARTITIONS)])

            await wait_until(groups_exist, WAIT_S, what="fan-out groups recreated")
            await post_and_see(3)
            await wait_until(lambda: len(loads) == 2, WAIT_S, what="the client reloaded on refetch")
            assert {g["post"] for g in client.inbox.groups.values()} == {"p-3"}  # the lost ones are gone
            assert client.inbox.unread == 1
            client.stop()
