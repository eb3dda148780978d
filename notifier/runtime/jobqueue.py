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

from schemas import keys


def serialize(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def deserialize(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(raw)
    return value


def job_pool(redis: Redis) -> ArqRedis:
    """Shares `redis`'s connection pool (a configured server, the private one, or the fake)."""
    return ArqRedis(
        redis.connection_pool,
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
