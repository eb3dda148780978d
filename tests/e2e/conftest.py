"""The e2e tier runs twice: on the suite's single redis-server and on its Redis Cluster."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from loadtest.cluster import ClusterLab
from notifier.runtime.settings import Settings
from tests.backends import backend, backend_env, redis
from tests.browser import browser
from tests.conftest import SettingsFactory, base_env

__all__ = ["backend", "browser", "redis"]


@pytest.fixture
def settings_factory(backend: str, redis_url: str, redis_cluster: ClusterLab) -> SettingsFactory:
    env = backend_env(base_env(redis_url), backend, redis_cluster, redis_url)

    def make(overrides: Mapping[str, str] | None = None, /) -> Settings:
        return Settings.from_env({**env, **(overrides or {})})

    return make
