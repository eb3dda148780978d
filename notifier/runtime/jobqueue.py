"""The arq job queue as every role sees it: a pool on the role's own Redis connection pool,
JSON (never pickle) for job payloads so enqueuers and the jobs worker agree, and JobSet, what
a feature hands the jobs worker to run (the composition root wires one to the other)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.typing import WorkerCoroutine
from redis.asyncio import Redis

from feeds.cluster import Cluster
from schemas import keys
from schemas.errors import ConfigError


def serialize(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def job_pool(redis: Redis) -> ArqRedis:
    """Shares `redis`'s connection pool (a configured server, the private one, or the fake); on
    a cluster, the pool of its jobs Redis (arq speaks to one plain Redis only)."""
    queue = redis.jobs if isinstance(redis, Cluster) else redis
    if queue is None:  # Settings refuse a cluster without NOTIFIER_JOBS_REDIS_URL
        raise ConfigError("a cluster needs NOTIFIER_JOBS_REDIS_URL for the job queue")
    return ArqRedis(
        queue.connection_pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=keys.JOBS_QUEUE,
    )


@dataclass(frozen=True, slots=True)
class JobSet:
    """Job functions (registered under their `__qualname__`), functions run periodically (and
    once at start), and the `ctx` every one of them receives (arq adds its own keys)."""

    functions: Sequence[WorkerCoroutine]
    periodic: Sequence[WorkerCoroutine] = ()
    ctx: Mapping[str, Any] = field(default_factory=dict)
