"""Both clients (notifier.client, and clients/js through its follow example) through the faults
that matter to them, every process real: a gateway restart (they resume from the cursor, no
reload) and a Redis restart that loses the data (told to refetch, they reload over REST and
follow on)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from notifier.client import Inbox, InboxClient

from .harness import JWT_SECRET, PARTITIONS, PROJECT, SERVICE_KEY, Lab, wait_until
from .observers import has_group

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

WAIT_S: Final = 60.0  # process starts on a busy two-core machine
USER: Final = "uli"
JS_CLIENT: Final = PROJECT / "clients" / "js"


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

        refetches: list[int] = []
        client = InboxClient(
            lab.ws_url,
            token,
            load,
            on_change=on_change,
            on_refetch=lambda: refetches.append(len(loads)),  # the caller reloads its feed here
            backoff_cap_s=1.0,
        )
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
            assert refetches == [2]  # told once, after the inbox's reload
            # reloaded: what REST shows now (the API may re-append what the restart lost)
            assert "p-3" in {g["post"] for g in client.inbox.groups.values()}
            assert client.inbox.unread == loads[-1]["unread"] + (
                len(client.inbox.groups) - len(loads[-1]["groups"])
            )
            client.stop()


def test_the_js_client_rides_out_gateway_and_redis_restarts(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not on PATH; the JS client's fault test needs it")
        pytest.skip("node is not on PATH")
    anyio.run(_js_restarts, tmp_path, node)


class States:
    """The JSON lines clients/js/examples/follow.mjs prints, one per inbox state."""

    def __init__(self) -> None:
        self.last: dict[str, Any] = {}
        self.other: list[str] = []  # anything else it printed (stderr included)
        self._changed = anyio.Event()

    async def collect(self, process: Process) -> None:
        assert process.stdout is not None
        async for line in TextReceiveStream(process.stdout):
            for text in line.splitlines():
                if not text.startswith("{"):
                    self.other.append(text)
                    continue
                self.last = orjson.loads(text)
                self._changed.set()
                self._changed = anyio.Event()

    async def wait_for(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        with anyio.fail_after(WAIT_S):
            while not (self.last and test(self.last)):
                await self._changed.wait()
        return self.last


async def _js_restarts(tmp_path: Path, node: str) -> None:
    async with Lab(tmp_path, appendonly=False) as lab:
        worker, api, gateway = lab.worker("worker-0"), lab.role("api", "api"), lab.role("gateway", "gateway")
        await lab.start(worker, api, gateway)
        headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}

        async def post(n: int) -> None:
            assert (await lab.http.post("/v1/events", content=like(n), headers=headers)).status_code == 202

        states = States()
        api_url, ws_url = f"http://127.0.0.1:{lab.api_port}", f"ws://127.0.0.1:{lab.gateway_port}"
        command = [node, "--experimental-websocket", "examples/follow.mjs", api_url, USER, ws_url]
        env = {**os.environ, "CLIENT_JWT_SECRET": JWT_SECRET}
        opened = anyio.open_process(command, cwd=JS_CLIENT, env=env, stderr=subprocess.STDOUT)
        async with await opened as follower:
            async with anyio.create_task_group() as tg:
                tg.start_soon(states.collect, follower)
                try:
                    await states.wait_for(lambda s: s["loads"] == 1)
                    assert (
                        await lab.http.post("/v1/events", content=like(1), headers=headers)
                    ).status_code == 202
                    await states.wait_for(lambda s: s["posts"] == ["p-1"])

                    gateway.send(signal.SIGTERM)
                    await gateway.wait_exit()
                    assert (
                        await lab.http.post("/v1/events", content=like(2), headers=headers)
                    ).status_code == 202
                    await gateway.start()
                    state = await states.wait_for(lambda s: s["posts"] == ["p-1", "p-2"])
                    assert state["loads"] == 1 and state["closes"]  # resumed from its cursor

                    lab.server.sigkill()
                    await lab.server.restart()

                    async def groups_exist() -> bool:
                        return all([await has_group(lab.redis, p) for p in range(PARTITIONS)])

                    await wait_until(groups_exist, WAIT_S, what="fan-out groups recreated")
                    assert (
                        await lab.http.post("/v1/events", content=like(3), headers=headers)
                    ).status_code == 202
                    state = await states.wait_for(lambda s: "p-3" in s["posts"] and s["loads"] >= 2)
                    assert state["unread"] >= 1  # refetched, then followed on
                finally:
                    print("follow.mjs printed:", *states.other[-40:], sep="\n")
                    if follower.returncode is None:
                        follower.terminate()
