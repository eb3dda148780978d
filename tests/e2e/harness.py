"""The real product in-process (`notifier up`'s services on a free port) and its two clients:
httpx for REST and `websockets` for push. Every wait is on a received frame, with a timeout."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import anyio
import httpx
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from notifier.cli import build_services
from notifier.fanout.consumer import FanoutWorker
from notifier.runtime import tokens
from notifier.runtime.redis import RedisHandle
from notifier.runtime.server import HttpService
from notifier.runtime.settings import Settings
from schemas import keys
from tests.support import serving

FRAME_TIMEOUT_S: Final = 5.0
BASE_TIME: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # one aggregation day

Json = dict[str, Any]


def at(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).isoformat()


def like(eid: str, actor: str, post: str, owner: str, t: float = 0) -> Json:
    return {"type": "like", "id": eid, "actor": actor, "occurred_at": at(t), "post": post, "owner": owner}


def follow(eid: str, actor: str, user: str, t: float = 0) -> Json:
    return {"type": "follow", "id": eid, "actor": actor, "occurred_at": at(t), "user": user}


@dataclass
class App:
    settings: Settings
    redis: Redis
    worker: FanoutWorker
    base_url: str
    http: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/v1/ws"

    def token(self, user: str, ttl_s: float = 600) -> str:
        return tokens.issue(self.settings.auth, user, ttl_s=ttl_s)

    def service_auth(self, service: str = "posts") -> dict[str, str]:
        key = next(s.key for s in self.settings.ingest.services if s.name == service)
        return {"Authorization": f"Bearer {key}"}

    async def post(self, body: object, service: str = "posts") -> httpx.Response:
        headers = {**self.service_auth(service), "Content-Type": "application/json"}
        return await self.http.post("/v1/events", content=orjson.dumps(body), headers=headers)

    async def accept(self, *events: Json) -> None:
        """POST `events` as one batch and require every one accepted."""
        response = await self.post(list(events))
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(events), response.text

    async def stream_lengths(self) -> list[int]:
        return [await self.redis.xlen(keys.events(p)) for p in range(self.settings.ingest.partitions)]

    async def me(self, user: str, path: str = "/v1/me/notifications") -> Json:
        response = await self.http.get(path, headers={"Authorization": f"Bearer {self.token(user)}"})
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body


@contextlib.asynccontextmanager
async def running_app(settings: Settings, redis: Redis) -> AsyncIterator[App]:
    """Every service of `notifier up`, each started (ready) in order; stopped, then cancelled
    if it has not returned within the grace (tests.support.serving)."""
    services = build_services("up", settings, RedisHandle(redis, True, "test"))
    http = next(s for s in services if isinstance(s, HttpService))
    worker = next(s for s in services if isinstance(s, FanoutWorker))
    base_url = f"http://{settings.http.host}:{http.port}"
    async with serving(services), httpx.AsyncClient(base_url=base_url, trust_env=False) as client:
        yield App(settings, redis, worker, base_url, client)


@dataclass
class Push:
    """One WebSocket client after the handshake: `before_ready` holds what the gateway sent
    before its `ready` frame (the replay, or a refetch)."""

    ws: ClientConnection
    ready: Json
    before_ready: list[Json] = field(default_factory=list)

    async def frame(self, timeout_s: float = FRAME_TIMEOUT_S) -> Json:
        with anyio.fail_after(timeout_s):
            raw = await self.ws.recv()
        frame: Json = orjson.loads(raw)
        return frame

    async def change(self, timeout_s: float = FRAME_TIMEOUT_S) -> Json:
        frame = await self.frame(timeout_s)
        assert frame["type"] == "change", frame
        return frame

    async def changes(self, n: int) -> list[Json]:
        return [await self.change() for _ in range(n)]


def ws_connect(app: App, headers: Mapping[str, str] | None = None, origin: str | None = None) -> connect:
    return connect(
        app.ws_url,
        origin=Origin(origin) if origin is not None else None,
        additional_headers=headers,
        proxy=None,
        open_timeout=FRAME_TIMEOUT_S,
        close_timeout=FRAME_TIMEOUT_S,
        compression=None,
    )


@contextlib.asynccontextmanager
async def push_client(app: App, user: str, cursor: str | None = None) -> AsyncIterator[Push]:
    """Connect, authenticate as `user` (resuming after `cursor`) and read up to `ready`."""
    async with ws_connect(app) as ws:
        auth: Json = {"type": "auth", "token": app.token(user)}
        if cursor is not None:
            auth["cursor"] = cursor
        await ws.send(orjson.dumps(auth).decode())
        before: list[Json] = []
        while True:
            with anyio.fail_after(FRAME_TIMEOUT_S):
                frame: Json = orjson.loads(await ws.recv())
            if frame["type"] == "ready":
                break
            before.append(frame)
        yield Push(ws, frame, before)
