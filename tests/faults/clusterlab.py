"""`Lab` on the suite's Redis Cluster: the roles get the cluster's seeds (NOTIFIER_REDIS_CLUSTER)
and the suite's single server as their jobs Redis; the observer client is the product's own
cluster client. Several processes of one role get ports of their own."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx
import redis as sync_redis

from feeds.cluster import Cluster
from loadtest.cluster import ClusterLab

from .harness import Lab, RoleProcess, free_port, service_env


class ClusterWorld(Lab):
    def __init__(
        self, workdir: Path, cluster: ClusterLab, jobs_url: str, *, overrides: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(workdir, overrides=overrides)
        self.cluster = cluster
        self.jobs_url = jobs_url

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        ports = {
            "NOTIFIER_HTTP_API_PORT": str(self.api_port),
            "NOTIFIER_HTTP_GATEWAY_PORT": str(self.gateway_port),
            "NOTIFIER_REDIS_CLUSTER": "1",
            "NOTIFIER_JOBS_REDIS_URL": self.jobs_url,
        }
        return service_env(self.cluster.url, {**ports, **self.overrides, **(extra or {})})

    async def __aenter__(self) -> ClusterWorld:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster.wait_ok()
        self.cluster.flush()
        with sync_redis.Redis.from_url(self.jobs_url) as jobs:
            jobs.flushall()
        seeds = [("127.0.0.1", n.port) for n in self.cluster.live()]
        self._cluster = Cluster(seeds, retry_budget_s=10, socket_timeout=3.0, socket_connect_timeout=1.0)
        self._redis = self._cluster
        self._http = self.http_client(self.api_port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(kind, exc, tb)
        finally:
            await self._cluster.shutdown()

    def http_client(self, port: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(15.0),
            limits=httpx.Limits(max_connections=32),
            trust_env=False,
        )

    def second(self, name: str, role: str) -> RoleProcess:
        """One more api or gateway process, on a port of its own."""
        port = free_port()
        key = "NOTIFIER_HTTP_API_PORT" if role == "api" else "NOTIFIER_HTTP_GATEWAY_PORT"
        process = RoleProcess(name, role, self.env({key: str(port)}), self.workdir / f"{name}.log", port)
        self.roles[name] = process
        return process
