"""`notifier up` as a real process: with a private redis-server and with the in-process fake, a
like reaches its owner's WebSocket, and SIGTERM stops everything with exit status 0, also while
a role is still waiting for Redis."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import orjson
import pytest
from anyio.abc import Process
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from websockets.asyncio.client import connect

from tests.conftest import SERVICE_KEYS, base_env, free_port, require_executable

from .harness import FRAME_TIMEOUT_S, like

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

START_TIMEOUT_S = 30.0
GRACE_S = 5.0


def up_env(mode: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.update(base_env(mode))
    env.update(
        {
            "NOTIFIER_HTTP_API_PORT": str(port),
            "NOTIFIER_HTTP_GRACE_S": str(GRACE_S),
            "NOTIFIER_REDIS_DATA_DIR": str(data_dir),
            "NOTIFIER_LOG_LEVEL": "INFO",
        }
    )
    return env


async def _collect(process: Process, into: bytearray) -> None:
    assert process.stderr is not None
    async for chunk in process.stderr:
        into += chunk


@contextlib.asynccontextmanager
async def started(
    role: str, env: dict[str, str], *, own_session: bool = False
) -> AsyncIterator[tuple[Process, bytearray]]:
    """`notifier ROLE` as a process, its stderr collected; killed if still running at the end.
    `own_session`: its own process group, as a terminal's foreground job."""
    log = bytearray()
    command = [sys.executable, "-m", "notifier", role]
    opened = anyio.open_process(
        command, env=env, stdout=None, stderr=subprocess.PIPE, start_new_session=own_session
    )
    async with await opened as process, anyio.create_task_group() as tg:
        tg.start_soon(_collect, process, log)
        try:
            yield process, log
        finally:
            if process.returncode is None:
                process.kill()
                with anyio.CancelScope(shield=True):
                    await process.wait()


def _needs_redis_server() -> None:
    require_executable("redis-server", "the private server")


async def _wait_accepting(process: Process, port: int, log: bytearray) -> None:
    """uvicorn listens last, once every other service of `up` is ready; an external process gives
    no other readiness signal, so poll the port."""
    with anyio.fail_after(START_TIMEOUT_S):
        while True:
            if process.returncode is not None:
                raise AssertionError(f"notifier up exited {process.returncode}:\n{log.decode()}")
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.02)
                continue
            await stream.aclose()
            return


async def _token(env: dict[str, str], user: str) -> str:
    done = await anyio.run_process([sys.executable, "-m", "notifier", "token", user], env=env)
    return done.stdout.decode().strip()


@pytest.mark.parametrize("mode", ["embedded", "memory"])
async def test_up_pushes_a_like_to_its_owner_and_stops_cleanly_on_sigterm(mode: str, tmp_path: Path) -> None:
    if mode == "embedded":
        _needs_redis_server()
    port = free_port()
    env = up_env(mode, port, tmp_path)
    token = await _token(env, "owner")
    async with started("up", env) as (process, log):
        await _wait_accepting(process, port, log)
        async with connect(f"ws://127.0.0.1:{port}/v1/ws", proxy=None, compression=None) as ws:
            await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
            with anyio.fail_after(FRAME_TIMEOUT_S):
                assert orjson.loads(await ws.recv())["type"] == "ready"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:
                response = await http.post(
                    "/v1/events",
                    content=orjson.dumps(like("up-1", "fan", "post-1", "owner")),
                    headers={
                        "Authorization": f"Bearer {SERVICE_KEYS['posts']}",
                        "Content-Type": "application/json",
                    },
                )
            assert response.status_code == 202, response.text
            with anyio.fail_after(FRAME_TIMEOUT_S):
                frame = orjson.loads(await ws.recv())
            assert frame["type"] == "change"
            assert frame["change"]["group"]["actors"] == ["fan"]

        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(GRACE_S + 5):
            status = await process.wait()
        assert status == 0, log.decode()
    if mode == "embedded":
        assert (tmp_path / "redis").is_dir()  # the private server kept its data where it was told


@pytest.mark.parametrize("role", ["worker", "api"])
async def test_a_role_still_waiting_for_redis_stops_cleanly_on_sigterm(role: str, tmp_path: Path) -> None:
    env = up_env(f"redis://127.0.0.1:{free_port()}", free_port(), tmp_path)  # nothing listens there
    async with started(role, env) as (process, log):
        with anyio.fail_after(START_TIMEOUT_S):
            while b"redis unavailable in startup checks" not in log:
                assert process.returncode is None, log.decode()
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(GRACE_S):
            status = await process.wait()
        assert status == 0, log.decode()
        assert b"stopping during start-up signal=SIGTERM" in log


async def test_ctrl_c_stops_up_first_then_its_private_redis_server(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals its whole foreground process group: the private redis-server
    must not get it too (the roles' last writes would find Redis gone); `up` stops, then stops
    the server itself."""
    _needs_redis_server()
    port = free_port()
    async with started("up", up_env("embedded", port, tmp_path), own_session=True) as (process, log):
        await _wait_accepting(process, port, log)
        os.killpg(process.pid, signal.SIGINT)  # as the terminal does
        with anyio.fail_after(GRACE_S + 5):
            status = await process.wait()
        assert status == 0, log.decode()
    assert b"stopping signal=SIGINT" in log
    assert b"redis unavailable" not in log, log.decode()
    server_log = (tmp_path / "redis" / "redis.log").read_text()
    assert "Received SIGTERM" in server_log and "Received SIGINT" not in server_log, server_log


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server's life is tied to up's on Linux")
async def test_a_killed_up_takes_its_private_redis_server_with_it(tmp_path: Path) -> None:
    _needs_redis_server()
    port = free_port()
    async with started("up", up_env("embedded", port, tmp_path)) as (process, log):
        await _wait_accepting(process, port, log)
        url = (tmp_path / "redis" / "address").read_text().split()[0]
        process.kill()
        await process.wait()
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        with anyio.fail_after(10):
            while True:
                try:
                    await client.ping()
                except (RedisConnectionError, OSError):
                    break  # gone
                await anyio.sleep(0.05)
    finally:
        await client.aclose()
