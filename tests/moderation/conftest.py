"""Moderation tests: Settings built by `Settings.from_env` for moderation, and the shipped
classifier loaded once. The suite-wide redis-server fixture is in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final, Protocol

import orjson
import pytest

from loadtest.cluster import ClusterLab
from notifier.moderation.classifier import ProfanityCheck
from notifier.runtime.settings import Settings
from tests.backends import backend, backend_env, redis
from tests.browser import browser

JWT_SECRET: Final = "moderation-test-secret-0123456789abcdef-0123"
SERVICE_KEY: Final = "posts-key-0123456789abcdef"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "moderation: the moderation feature (rules, queue, recall, console)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.moderation)


# `redis_url` (a private redis-server for the session) and `anyio_backend` come from
# tests/conftest.py; `redis` and `backend` (one Redis, then the cluster) from tests/backends.py.
__all__ = ["backend", "browser", "redis"]


def env(redis_url: str) -> dict[str, str]:
    services = {"posts": {"key": SERVICE_KEY, "events": ["*"]}}
    return {
        "NOTIFIER_REDIS_URL": redis_url,
        "NOTIFIER_REDIS_SOCKET_TIMEOUT_S": "5",
        "NOTIFIER_AUTH_JWT_SECRET": JWT_SECRET,
        "NOTIFIER_INGEST_SERVICES": orjson.dumps(services).decode(),
        "NOTIFIER_INGEST_PARTITIONS": "2",
        "NOTIFIER_INGEST_MAX_LATENESS_S": "0",  # the suite's events have fixed dates, long past
        "NOTIFIER_FANOUT_BLOCK_MS": "100",
        "NOTIFIER_FANOUT_CONSUMER": "moderation-test",
        "NOTIFIER_HTTP_HOST": "127.0.0.1",
        "NOTIFIER_HTTP_API_PORT": "0",
        "NOTIFIER_HTTP_GRACE_S": "5",
        "NOTIFIER_JOBS_POLL_MS": "20",
        "NOTIFIER_JOBS_SWEEP_S": "1",
        "NOTIFIER_MODERATION_BLOCKED_DOMAINS": "spam.example",
        "NOTIFIER_MODERATION_VELOCITY_PER_MIN": "5",
        "NOTIFIER_MODERATION_DUPLICATE_TARGETS": "3",
    }


class SettingsFactory(Protocol):
    def __call__(self, overrides: Mapping[str, str] = ..., /) -> Settings: ...


@pytest.fixture
def settings_factory(backend: str, redis_url: str, redis_cluster: ClusterLab) -> SettingsFactory:
    base = backend_env(env(redis_url), backend, redis_cluster, redis_url)

    def make(overrides: Mapping[str, str] = {}, /) -> Settings:
        return Settings.from_env({**base, **overrides})

    return make


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> Settings:
    return settings_factory()


@pytest.fixture(scope="session")
def model() -> ProfanityCheck:
    return ProfanityCheck()
