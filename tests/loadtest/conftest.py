"""The load generator's end-to-end tests start their own stack: they need redis-server."""

from __future__ import annotations

import pytest

from tests.conftest import require_executable


@pytest.fixture
def needs_redis_server() -> None:
    require_executable("redis-server", "the load generator's stack")
