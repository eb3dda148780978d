"""The `faults` marker, and redis-server's presence: skip without it, fail without it on CI."""

from __future__ import annotations

import pytest

from tests.conftest import require_executable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real redis-server and notifier processes"
    )


@pytest.fixture(autouse=True)
def _redis_server_installed() -> None:
    require_executable("redis-server", "the fault-injection tests")
