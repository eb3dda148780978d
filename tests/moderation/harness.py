"""`notifier up` in-process (built by notifier.cli.build_services, uvicorn on a free port), an
HTTP client, and WebSocket push clients. Every wait is on a received frame, with a timeout."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx
import jwt
import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from notifier.cli import build_services
from notifier.runtime import tokens
from notifier.runtime.redis import RedisHandle
from notifier.runtime.server import HttpService
from notifier.runtime.settings import Settings
from schemas.events import Event, encode_event
from tests.support import serving

from .conftest import SERVICE_KEY

FRAME_TIMEOUT_S: Final = 10.0
Json = dict[str, Any]


@dataclass
class App:
    settings: Settings
    redis: Redis
    base_url: str
    http: httpx.AsyncClient

    def token(self, user: str, role: str = "user") -> str:
        return tokens.issue(self.settings.auth, user, ttl_s=600, role=role)

    def forged(self, user: str) -> str:
        """A moderator token signed with another secret."""
        claims = jwt.decode(self.token(user, "moderator"), options={"verify_signature": False})
        return jwt.encode(claims, "another-secret-0123456789abcdef-0123456789", algorithm="HS256")

    def auth(self, user: str, role: str = "moderator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, role)}"}

    async def send(self, *events: Event) -> None:
        body = b"[" + b",".join(encode_event(e) for e in events) + b"]"
        headers = {"Authorization": f"Bearer {SERVICE_KEY}", "Content-Type": "application/json"}
        response = await self.http.post("/v1/events", content=body, headers=headers)
        assert response.status_code == 202, response.text

    async def moderate(self, method: str, path: str, who: str = "ann", body: object = None) -> httpx.Response:
        headers = self.auth(who)
        if body is not None:
            headers["Content-Type"] = "application/json"
        content = orjson.dumps(body) if body is not None else None
        return await self.http.request(method, path, headers=headers, content=content)

    async def wait_for_item(self, item_id: str, who: str = "ann") -> Json:
        """Poll the queue until the fan-out has screened the event (it runs concurrently)."""
        with anyio.fail_after(FRAME_TIMEOUT_S):
            while True:
                response = await self.moderate("GET", f"/v1/moderation/items/{item_id}", who)
                if response.status_code == 200:
                    item: Json = response.json()["item"]
                    return item
                assert response.status_code == 404, response.text
                await anyio.sleep(0.02)

    async def wait_for(self, path: str, ready: Callable[[Json], bool], who: str = "ann") -> Json:
        """Poll a moderator GET until `ready` holds (the fan-out runs concurrently)."""
        with anyio.fail_after(FRAME_TIMEOUT_S):
            while True:
                body: Json = (await self.moderate("GET", path, who)).json()
                if ready(body):
                    return body
                await anyio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, redis: Redis) -> AsyncIterator[App]:
    services = build_services("up", settings, RedisHandle(redis, True, "test"))
    http = next(s for s in services if isinstance(s, HttpService))
    base_url = f"http://{settings.http.host}:{http.port}"
    async with serving(services), httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=10) as client:
        yield App(settings, redis, base_url, client)


@dataclass
class Push:
    ws: ClientConnection

    async def frame(self) -> Json:
        with anyio.fail_after(FRAME_TIMEOUT_S):
            frame: Json = orjson.loads(await self.ws.recv())
        return frame

    async def change(self) -> Json:
        frame = await self.frame()
        assert frame["type"] == "change", frame
        change: Json = frame["change"]
        return change


@contextlib.asynccontextmanager
async def push_client(app: App, user: str) -> AsyncIterator[Push]:
    url = app.base_url.replace("http://", "ws://", 1) + "/v1/ws"
    async with connect(url, proxy=None, open_timeout=FRAME_TIMEOUT_S, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": app.token(user)}).decode())
        push = Push(ws)
        ready = await push.frame()
        assert ready["type"] == "ready", ready
        yield push
