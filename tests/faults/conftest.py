"""The `faults` marker, and redis-server's presence: skip without it, fail without it on CI."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault injection against real redis-server and notifier processes"
    )


@pytest.fixture(autouse=True)
def _redis_server_installed() -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not on PATH; the fault-injection tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
