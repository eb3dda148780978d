"""Startup checks of the Redis a role talks to: refuse what loses data, warn about what risks it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from feeds.cluster import CLUSTER_UNAVAILABLE, Cluster

from .lifecycle import Backoff

log = logging.getLogger(__name__)

MIN_REDIS = (7, 0)


@dataclass(frozen=True, slots=True)
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def evicts(policy: str | bytes | None) -> bool:
    """Whether Redis under `policy` (its maxmemory-policy; None: not told) may evict keys: every
    policy but noeviction may drop streams and inboxes when memory is full."""
    if isinstance(policy, bytes):
        policy = policy.decode()
    return policy not in (None, "noeviction")


async def inspect_redis(redis: Redis) -> Findings:
    found = Findings()
    if isinstance(redis, Cluster):
        await _cluster_ready(redis)
    server = await redis.info("server")
    version = tuple(int(x) for x in str(server.get("redis_version", "0.0")).split(".")[:2])
    if version < MIN_REDIS:
        found.errors.append(f"Redis {server.get('redis_version')} is too old; 7.0+ is required")
    try:
        policy = (await redis.config_get("maxmemory-policy")).get("maxmemory-policy")
    except ResponseError as exc:  # CONFIG denied by an ACL: say so, do not guess
        found.warnings.append(f"cannot read maxmemory-policy ({exc}); it must be noeviction")
    else:
        if evicts(policy):
            found.errors.append(
                f"maxmemory-policy is {policy!r}: Redis may evict streams and inboxes; set it to noeviction"
            )
    persistence = await redis.info("persistence")
    if not int(persistence.get("aof_enabled", 0)):
        found.warnings.append(
            "AOF is off: a Redis crash loses events accepted since the last snapshot "
            "(enable appendonly yes, appendfsync everysec or always)"
        )
    return found


async def _cluster_ready(cluster: Cluster) -> None:
    """Raises until every slot has a master and every master says `cluster_state:ok`."""
    for node in await cluster.masters():
        state = await cluster.cluster_info(target_nodes=node)
        if state.get("cluster_state") != "ok":
            raise ClusterDownError(f"cluster_state is {state.get('cluster_state')} on {node.name}")


async def check_redis(redis: Redis) -> list[str]:
    """Log warnings; return the errors that must stop the role. A refused password or a
    database number Redis does not have is one of them, not an outage to wait out."""
    try:
        found = await inspect_redis(redis)
    except AuthenticationError as exc:
        return [f"authentication failed ({exc}): check the credentials in the Redis URL"]
    except ResponseError as exc:
        if "DB index is out of range" not in str(exc):
            raise
        return [f"{exc}: check the database number in the Redis URL"]
    for warning in found.warnings:
        log.warning("redis check: %s", warning)
    return found.errors


async def check_redis_when_up(redis: Redis) -> list[str]:
    """`check_redis`, waiting out a Redis that does not answer yet: a role started (or restarted)
    during a Redis outage comes up with Redis instead of exiting."""
    backoff = Backoff("startup checks")
    while True:
        try:
            errors = await check_redis(redis)
        except (RedisConnectionError, RedisTimeoutError, OSError, *CLUSTER_UNAVAILABLE) as exc:
            await backoff.sleep(exc)
            continue
        backoff.reset()
        return errors
