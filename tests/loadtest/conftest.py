"""The load generator's end-to-end tests start their own stack: they need redis-server."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def needs_redis_server() -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH; the load generator's stack needs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
