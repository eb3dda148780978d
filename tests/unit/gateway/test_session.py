"""Session behaviour against a fake WebSocket (a port): the parts a real socket makes racy."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from feeds import changelog
from gateway.hub import Hub, Push
from gateway.session import Session
from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings, GatewaySettings
from schemas.cursor import Cursor
from schemas.errors import CODES, Reason

AUTH = AuthSettings(jwt_secret="s" * 40)
CHECK = 2**23  # a published change's check


class StuckClient:
    """Authenticates, then never reads again: every send after `ready` blocks forever."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.sent: list[str] = []
        self.ready = anyio.Event()
        self.closed = anyio.Event()
        self.close_code = 0
        self._forever = anyio.Event()

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            return {
                "type": "websocket.receive",
                "text": orjson.dumps({"type": "auth", "token": self._token}).decode(),
            }
        await self._forever.wait()
        raise AssertionError("unreachable")

    async def send_text(self, text: str) -> None:
        if self.sent and '"type":"ready"' in self.sent[-1]:
            await self._forever.wait()  # the client's buffers are full
        self.sent.append(text)
        if '"type":"ready"' in text:
            self.ready.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.close_code = code
        self.closed.set()


@pytest.mark.anyio
async def test_a_client_that_stops_reading_is_cut_off_when_its_queue_fills(redis: Redis) -> None:
    settings = GatewaySettings(send_queue_frames=4)
    client = StuckClient(tokens.issue(AUTH, "bob"))
    session = Session(client, redis, Hub(redis), settings, AUTH)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.serve)
        with anyio.fail_after(5):
            await client.ready.wait()
        for n in range(1, settings.send_queue_frames + 3):  # the writer is stuck on the first
            session.push_nowait(Push(f"e {n} {CHECK} " + '{"op":"read","all":true,"unread":0}'))
        with anyio.fail_after(5):
            await client.closed.wait()
    assert client.close_code == CODES[Reason.SLOW_CONSUMER].ws_close


class ResumingClient(StuckClient):
    """Authenticates with a cursor, so the session starts by reading the change log."""

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            frame = {"type": "auth", "token": self._token, "cursor": str(Cursor("e", 1))}
            self.sent.append("auth")
            return {"type": "websocket.receive", "text": orjson.dumps(frame).decode()}
        await self._forever.wait()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_an_error_reply_from_redis_closes_with_unavailable_not_a_traceback(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis restarted twice in a row: the script cache was empty again after the reload
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise NoScriptError("No matching script. Please use EVAL.")

    monkeypatch.setattr(changelog, "read_after", refused)
    client = ResumingClient(tokens.issue(AUTH, "bob"))
    session = Session(client, redis, Hub(redis), GatewaySettings(), AUTH)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        await session.serve()
    assert client.close_code == CODES[Reason.UNAVAILABLE].ws_close
