"""The composition root: `notifier api|worker|gateway|jobs|up|token|replay|dlq`. Settings are read once
here."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Final

import anyio
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from feeds.cluster import REDIS_UNAVAILABLE
from gateway.app import UPGRADE_ROUTE, gateway_app
from gateway.shardedhub import hub_for
from gateway.wsserver import WebSocketProtocol
from notifier import __version__, admin, openapi
from notifier.api.app import api_app
from notifier.api.pressure import Pressure
from notifier.api.problems import EXCEPTION_HANDLERS
from notifier.api.recent import RecentAppends
from notifier.api.recovery import RestartWatch
from notifier.demo import demo_routes
from notifier.explain import explain_routes
from notifier.fanout.backlog import Backlog
from notifier.fanout.consumer import FanoutWorker
from notifier.fanout.janitor import Janitor
from notifier.fanout.sweeper import Sweeper
from notifier.jobs.worker import JobsService
from notifier.moderation import policy
from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.components import Components
from notifier.moderation.effects import job_set as moderation_jobs
from notifier.moderation.queue import ReviewQueue
from notifier.moderation.routes import MODERATOR_ROLE, moderation_routes
from notifier.moderation.screening import Screener
from notifier.runtime import logs, metrics, tokens, tracing
from notifier.runtime.access import with_request_ids
from notifier.runtime.checks import check_redis, check_redis_when_up
from notifier.runtime.health import Health, Started, http_app, ops_app, ops_routes
from notifier.runtime.lifecycle import Service, run_services, unless_signalled
from notifier.runtime.redis import RedisHandle, open_redis
from notifier.runtime.server import HttpService
from notifier.runtime.settings import Settings
from schemas.errors import ConfigError, Reason, Rejected
from schemas.events import is_id

log = logging.getLogger("notifier")

ROLES = ("api", "worker", "gateway", "jobs", "up")


def _http(settings: Settings, app: ASGIApp, port: int) -> HttpService:
    return HttpService(
        app,
        host=settings.http.host,
        port=port,
        ping_interval_s=settings.gateway.ping_interval_s,
        max_frame_bytes=settings.gateway.max_frame_bytes,
        ws=WebSocketProtocol,
    )


def build_services(role: str, settings: Settings, redis: RedisHandle) -> list[Service]:
    """The role's services in start order; the last one marks the role ready (/readyz). Metrics
    go to `metrics.current()` (run_role sets it; one page for every role of `up`)."""
    client = redis.client
    counted = metrics.current()
    health = Health(client)
    ops = ops_routes(health, counted)
    services: list[Service] = []
    if role in {"worker", "jobs"}:  # no HTTP port of their own otherwise: a small one for probes
        probes = ops_app(health, counted, exception_handlers=EXCEPTION_HANDLERS)
        services.append(_http(settings, with_request_ids(probes), settings.metrics.port))
    if role in {"worker", "api", "up"}:  # the api's page keeps the lag visible with no worker up
        backlog = Backlog(client, settings.ingest.partitions)
        counted.add_sampler(
            lambda: backlog.sample(counted),
            counted.lag,
            counted.pending,
            counted.oldest_pending,
            counted.dead_letters,
        )
    if role in {"worker", "up"}:
        health.add("fanout", backlog.missing_groups)
        if settings.moderation.enabled:
            queue = Components.build(client, settings).queue
            counted.add_sampler(
                lambda: _sample_review_queue(queue, counted),
                counted.moderation_queue,
                counted.moderation_oldest,
            )
        consumer = settings.fanout.consumer or f"{socket.gethostname()}-{settings.fanout.slot}"
        worker = FanoutWorker(
            client,
            settings.fanout,
            partitions=settings.ingest.partitions,
            limits=settings.feeds,
            consumer=consumer,
            blocking=redis.blocking,
            screen=_screener(settings, redis),
        )
        health.add("fanout", worker.stuck)
        janitor = Janitor(
            client,
            settings.fanout,
            partitions=settings.ingest.partitions,
            window_s=settings.ingest.dedupe_ttl_s,
        )
        sweeper = Sweeper(
            client,
            settings.feeds,
            horizon_ms=settings.register_horizon_ms,
            users_per_round=settings.fanout.sweep_users,
            interval_ms=settings.fanout.maintenance_interval_ms,
        )
        services += [worker, janitor, sweeper]
    if role in {"api", "up"}:
        pressure = Pressure(client, settings.ingest)
        recent = RecentAppends(settings.ingest.recovery_keep_s, settings.ingest.recovery_keep_events)
        services += [pressure, RestartWatch(client, settings.ingest, recent)]
    if role in {"jobs", "up"}:
        services.append(JobsService(settings.jobs, client, moderation_jobs(settings, client)))
        outbox = Components.build(client, settings).outbox

        async def sample_outbox() -> None:
            counted.outbox.set(len(await outbox.pending()))

        counted.add_sampler(sample_outbox, counted.outbox)
    if role == "api":
        app = api_app(settings, client, pressure, [*_routes(settings, client), *ops], recent)
        services.append(_http(settings, with_request_ids(app), settings.http.api_port))
    if role in {"gateway", "up"}:
        hub = hub_for(client, position_check_s=settings.gateway.position_check_s)

        async def subscribed() -> str | None:
            return None if hub.subscribed else "pub/sub not subscribed"

        health.add("pubsub", subscribed)
    if role == "gateway":
        alone = gateway_app(settings, client, hub, http_app([*ops, UPGRADE_ROUTE], EXCEPTION_HANDLERS))
        services += [hub, _http(settings, with_request_ids(alone), settings.http.gateway_port)]
    if role == "up":
        rest = api_app(settings, client, pressure, [*_routes(settings, client), *ops, UPGRADE_ROUTE], recent)
        app = with_request_ids(gateway_app(settings, client, hub, rest))
        services += [hub, _http(settings, app, settings.http.api_port)]
    services.append(Started(health))
    return services


def _routes(settings: Settings, client: Redis) -> list[BaseRoute]:
    """The API's routes besides ingest, the inbox and the probes: moderation, explain, the
    OpenAPI document and page, and in dev mode the demo page at /."""
    demo = demo_routes(settings) if settings.dev else []  # it hands out a dev token and key
    return [
        *moderation_routes(settings, client),
        *explain_routes(settings, client),
        *openapi.routes(__version__, demo=settings.dev),
        *demo,
    ]


async def _sample_review_queue(queue: ReviewQueue, counted: metrics.Metrics) -> None:
    counts = await queue.counts()
    counted.moderation_queue.set(counts["pending"] + counts["claimed"])
    oldest_ms = counts["oldest_open_ms"]
    counted.moderation_oldest.set(max(0.0, time.time() - oldest_ms / 1000) if oldest_ms else 0)


def _screener(settings: Settings, redis: RedisHandle) -> Screener | None:
    if not settings.moderation.enabled:
        return None
    model = ProfanityCheck() if settings.moderation.classifier else None
    return Screener.build(redis.client, settings, model=model)


async def run_role(role: str, settings: Settings) -> None:
    metrics.use(
        metrics.Metrics(enabled=settings.metrics.enabled, role=role)
    )  # before any task: all inherit it
    traced = None if settings.tracing == "none" else tracing.configure(role, settings.tracing)
    tracing.use(traced)
    try:
        await _run_role(role, settings)
    finally:
        if traced is not None:
            traced.shutdown()


async def _run_role(role: str, settings: Settings) -> None:
    async with open_redis(settings.redis, jobs_url=settings.jobs.redis_url) as redis:
        log.info("role=%s redis=%s", role, redis.description)
        if redis.blocking:  # a real server: the in-process fake has no config to check
            errors = await unless_signalled(lambda: _waiting_for_redis(role, settings, redis))
            if errors is None:
                return  # stopped while waiting for Redis
            if errors:
                raise ConfigError("redis refused:\n  " + "\n  ".join(errors))
        services = build_services(role, settings, redis)
        if role == "up":
            _announce(settings, services)
        await run_services(services, grace_s=settings.http.grace_s, drain_s=settings.http.drain_s)


async def _waiting_for_redis(role: str, settings: Settings, redis: RedisHandle) -> list[str]:
    """`check_redis`; if Redis does not answer, `check_redis_when_up` with the role's probes
    served on its port meanwhile: /livez 200, /readyz 503 `services starting`, anything else 503
    `unavailable`. A role started during a Redis outage is then a live process waiting, not one
    an orchestrator's startup probe restarts over and over; with Redis up, the port opens only
    for the role itself."""
    try:
        return await check_redis(redis.client)
    except REDIS_UNAVAILABLE as exc:
        log.warning("redis not answering at start-up (%s): waiting, probes served meanwhile", exc)
    port = getattr(settings.http, _PORTS[role][1]) if role in _PORTS else settings.metrics.port
    ops = ops_routes(Health(redis.client), metrics.current())  # never started: not ready
    starting = Route("/{path:path}", _starting, methods=_ANY)
    probes = _http(settings, http_app([*ops, starting], EXCEPTION_HANDLERS), port)
    errors: list[str] = []

    async def serve(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # shielded: a signal stops it through `stop()` (uvicorn cancelled mid-serve logs a
        # CancelledError traceback)
        with anyio.CancelScope(shield=True):
            await probes.run(task_status=task_status)

    try:
        async with anyio.create_task_group() as tg:
            await tg.start(serve)
            try:
                errors = await check_redis_when_up(redis.client)
            finally:
                probes.stop()  # the role's own server takes the port next
    finally:
        probes.socket.close()
    return errors


_ANY: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _starting(request: Request) -> Response:
    raise Rejected(Reason.UNAVAILABLE, "starting: waiting for Redis; retry")


def _announce(settings: Settings, services: Sequence[Service]) -> None:
    port = next(s.port for s in services if isinstance(s, HttpService))
    base = f"http://{settings.http.host}:{port}"
    key = settings.ingest.services[0].key if settings.dev else "<your service key>"
    log.warning(
        "notifier is up: demo page %s/ (dev mode), API docs %s/docs, "
        "POST %s/v1/events (Authorization: Bearer %s), "
        "WebSocket ws://%s:%s/v1/ws, tokens: `notifier token USER`, "
        "moderation console %s/moderation/ (`notifier token NAME --role moderator`)",
        base,
        base,
        base,
        key,
        settings.http.host,
        port,
        base,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notifier", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for role in ROLES:
        sub.add_parser(
            role,
            help=f"run the {role} role" if role != "up" else "run every role",
            epilog=_role_help(role),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    token = sub.add_parser("token", help="mint a client token (demo and testing)")
    token.add_argument("user")
    token.add_argument("--ttl-s", type=float, default=3600)
    token.add_argument("--role", default="user", choices=("user", MODERATOR_ROLE), help="default: user")
    admin.add_commands(sub)
    args = parser.parse_args(argv)
    environ = _environ_for(args.command)
    try:
        settings = Settings.from_env(environ)
        if errors := policy.problems(settings.moderation):  # the rules are moderation's to name
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    except ConfigError as exc:
        return _refuse(str(exc), environ.get("NOTIFIER_LOG_FORMAT", "text"), args.command)
    log_settings = settings.log
    logs.configure(log_settings.level, fmt=log_settings.format, access=log_settings.access, role=args.command)
    missing = _missing_for(args.command, settings)
    if missing:
        return _refuse(f"{args.command} needs {missing}", log_settings.format, args.command)
    if args.command == "token":
        if not is_id(args.user) or not 0 < args.ttl_s < math.inf:
            why = "token needs a user id (1-128 of A-Z a-z 0-9 _ . : @ -) and a positive --ttl-s"
            return _refuse(why, log_settings.format, args.command)
        print(tokens.issue(settings.auth, args.user, ttl_s=args.ttl_s, role=args.role))
        return 0
    try:
        if args.command not in ROLES:
            try:
                return anyio.run(admin.run_command, args, settings)
            except REDIS_UNAVAILABLE as exc:  # an outage, not a bad reference: say so, distinctly
                why = f"redis unavailable ({type(exc).__name__}: {exc}); retry when it answers"
                return _refuse(why, log_settings.format, args.command, status=3)
        if settings.dev:
            log.warning("DEV MODE: demo service key and JWT secret in use; never expose this")
        anyio.run(run_role, args.command, settings, backend_options={"use_uvloop": True})
    except (Exception, BaseExceptionGroup) as exc:
        config = _config_error(exc)
        if config is None:
            if log_settings.format != "json":
                raise
            # a traceback of many lines would reach a log collector as many records
            log.critical("%s stopped by an unexpected error", args.command, exc_info=exc)
            return 1
        return _refuse(str(config), log_settings.format, args.command)
    return 0


def _refuse(message: str, fmt: str, role: str, *, status: int = 2) -> int:
    """Why a command cannot run, on stderr: one line (a message's indented problems joined with
    `; `), one JSON object in the JSON log format, so that a log collector keeps the line that
    explains a crash loop whole. Returns `status`: 2 for what must be fixed, 3 for an outage."""
    head, *rest = message.split("\n")
    line = f"{head} {'; '.join(r.strip() for r in rest)}" if rest else head
    if fmt == "json":
        record = logging.makeLogRecord(
            {
                "name": "notifier",
                "levelname": "CRITICAL",
                "levelno": logging.CRITICAL,
                "msg": line,
                "role": role,
            }
        )
        line = logs.JsonFormatter().format(record)
    print(line, file=sys.stderr)
    return status


def _config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError `exc` is, or the first of a group of nothing else (one raised in a task
    group, such as the port of the probes a role serves while it waits for Redis)."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        configs, rest = exc.split(ConfigError)
        if configs is not None and rest is None:
            return _config_error(configs.exceptions[0])
    return None


# the settings sections each role reads some of (http: every role's host, grace and drain;
# fanout: the log's retention, which moderation's index and the api's recovery use); `up` all
_SECTIONS: Final = {
    "api": ("redis", "auth", "ingest", "fanout", "feeds", "moderation", "http", "log", "metrics"),
    "worker": ("redis", "ingest", "fanout", "feeds", "moderation", "http", "log", "metrics"),
    "gateway": ("redis", "auth", "gateway", "http", "log", "metrics"),
    "jobs": ("redis", "jobs", "ingest", "fanout", "moderation", "feeds", "http", "log", "metrics"),
}
_PORTS: Final = {
    "api": ("NOTIFIER_HTTP_API_PORT (HTTP)", "api_port"),
    "gateway": ("NOTIFIER_HTTP_GATEWAY_PORT (WebSocket /v1/ws)", "gateway_port"),
    "up": ("NOTIFIER_HTTP_API_PORT (HTTP and the WebSocket /v1/ws)", "api_port"),
}
_SECRET: Final = frozenset({"jwt_secret", "services"})


def _role_help(role: str) -> str:
    defaults = Settings()
    sections = _SECTIONS.get(role) or [
        f.name for f in dataclasses.fields(Settings) if dataclasses.is_dataclass(getattr(defaults, f.name))
    ]
    if role in _PORTS:
        what, name = _PORTS[role]
        lines = [f"listens on: {what}, default {getattr(defaults.http, name)}"]
    else:
        lines = [f"listens on: NOTIFIER_METRICS_PORT (/metrics and probes), default {defaults.metrics.port}"]
    lines.append("settings it reads (environment = default):")
    for section in sections:
        values = getattr(defaults, section)
        for field in dataclasses.fields(values):
            if (section, field.name) == ("metrics", "port") and role in _PORTS:
                continue  # a role with a port of its own serves /metrics there
            lines.append(f"  NOTIFIER_{section}_{field.name}".upper() + f" = {_shown(field.name, values)}")
    return "\n".join(lines)


def _shown(name: str, values: object) -> str:
    value = getattr(values, name)
    if name == "url":
        return "(unset: 127.0.0.1:6379 if it answers, else a private redis-server, as `up` does)"
    if name in _SECRET:
        return "(secret)"
    if isinstance(value, frozenset | tuple):
        return ",".join(sorted(map(str, value)))
    return str(value)


def _missing_for(command: str, settings: Settings) -> str:
    """What a command needs that only the roles serving clients or services need."""
    if command in {"api", "gateway", "token"} and not settings.auth.jwt_secret:
        return "NOTIFIER_AUTH_JWT_SECRET (or run `notifier up` for a demo)"
    if command == "api" and not settings.ingest.services:
        return "NOTIFIER_INGEST_SERVICES (service keys, JSON)"
    if command not in ROLES and command != "token" and settings.redis.url == "memory":
        return "a real Redis (operator commands act on stored data; NOTIFIER_REDIS_URL=memory has none)"
    return ""


def _environ_for(command: str) -> dict[str, str]:
    """`up` and `token` are for demos: with no secrets configured they use the dev defaults."""
    environ = dict(os.environ)
    if command in {"up", "token"} and "NOTIFIER_AUTH_JWT_SECRET" not in environ:
        environ.setdefault("NOTIFIER_DEV", "1")
    return environ
