"""The JS client's own tests (clients/js, node's test runner) against the real product started
here: real uvicorn and Redis, with a send queue of one frame so a burst closes a client 4504."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

import anyio
import pytest
from redis.asyncio import Redis

from tests.conftest import SettingsFactory

from .harness import running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

CLIENT: Final = Path(__file__).resolve().parents[2] / "clients" / "js"


def node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("node is not on PATH; the JS client's tests need it")
        pytest.skip("node is not on PATH")
    return found


async def test_the_js_client_against_the_gateway(redis: Redis, settings_factory: SettingsFactory) -> None:
    settings = settings_factory({"NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES": "1"})
    async with running_app(settings, redis) as app:
        environ = {
            **os.environ,
            "CLIENT_TEST_BASE": app.base_url,
            "CLIENT_TEST_JWT_SECRET": settings.auth.jwt_secret,
            "CLIENT_TEST_AUDIENCE": settings.auth.jwt_audience,
            "CLIENT_TEST_SERVICE_KEY": settings.ingest.services[0].key,
        }
        command = [node(), "--experimental-websocket", "--test", "--test-timeout=30000", "test/"]
        with anyio.fail_after(90):
            done = await anyio.run_process(command, cwd=CLIENT, env=environ, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output[-6000:]
    assert "# fail 0" in output and "# pass 9" in output, output[-3000:]
