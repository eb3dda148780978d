"""Gateway refusals over a real WebSocket: each closes with its documented 44xx code after one
`error` frame and never sends a change; a foreign Origin is refused before the upgrade."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import anyio
import orjson
import pytest
from redis.asyncio import Redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from schemas.errors import CODES, Reason
from tests.conftest import ALLOWED_ORIGIN, SettingsFactory

from .harness import FRAME_TIMEOUT_S, App, Json, like, push_client, running_app, ws_connect

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUTH_DEADLINE_S = 0.3


@pytest.fixture
async def app(redis: Redis, settings_factory: SettingsFactory) -> AsyncIterator[App]:
    settings = settings_factory({"NOTIFIER_GATEWAY_AUTH_DEADLINE_S": str(AUTH_DEADLINE_S)})
    async with running_app(settings, redis) as running:
        # zoe has a change waiting, so any replay or live relay would show up as a change frame
        await running.accept(like("z-1", "fan", "post-1", "zoe"))
        await running.worker.drain()
        yield running


async def until_closed(app: App, *frames: str) -> tuple[list[Json], int | None]:
    """Send `frames`, then read everything the gateway sends until it closes."""
    got: list[Json] = []
    async with ws_connect(app) as ws:
        for frame in frames:
            await ws.send(frame)
        with anyio.fail_after(FRAME_TIMEOUT_S):
            try:
                while True:
                    got.append(orjson.loads(await ws.recv()))
            except ConnectionClosed:
                pass
        return got, ws.close_code


def auth(token: str, cursor: str | None = "-.0-0") -> str:
    frame: Json = {"type": "auth", "token": token}
    if cursor is not None:
        frame["cursor"] = cursor
    return orjson.dumps(frame).decode()


async def assert_closed(app: App, reason: Reason, *frames: str) -> None:
    got, code = await until_closed(app, *frames)
    assert code == CODES[reason].ws_close
    assert [(f["type"], f["error"]) for f in got] == [("error", reason.value)]  # and no change frame


async def test_the_first_frame_must_be_auth(app: App) -> None:
    await assert_closed(app, Reason.UNAUTHORIZED, '{"type": "ping"}')


async def test_a_bad_or_expired_token_is_refused(app: App) -> None:
    await assert_closed(app, Reason.UNAUTHORIZED, auth("not-a-token"))
    other = tokens.issue(AuthSettings(jwt_secret="y" * 40), "zoe")  # signed with another key
    await assert_closed(app, Reason.UNAUTHORIZED, auth(other))
    await assert_closed(app, Reason.TOKEN_EXPIRED, auth(app.token("zoe", ttl_s=-60)))


async def test_malformed_frames_and_cursors_are_refused(app: App) -> None:
    await assert_closed(app, Reason.MALFORMED, "{not json")
    await assert_closed(app, Reason.MALFORMED, '{"type": "auth"}')
    await assert_closed(app, Reason.MALFORMED, auth(app.token("zoe"), cursor="no-dot"))


async def test_no_auth_frame_within_the_deadline_closes(app: App) -> None:
    with anyio.fail_after(AUTH_DEADLINE_S + FRAME_TIMEOUT_S):
        await assert_closed(app, Reason.AUTH_TIMEOUT)


async def test_a_refreshed_token_must_be_for_the_same_user(app: App) -> None:
    async with push_client(app, "zoe", cursor="-.0-0") as client:
        assert [f["type"] for f in client.before_ready] == ["change"]
        await client.ws.send(auth(app.token("zoe"), cursor=None))  # a refresh for zoe is fine
        await client.ws.send('{"type": "ping"}')
        assert await client.frame() == {"type": "pong"}
        await client.ws.send(auth(app.token("mallory"), cursor=None))
        assert (await client.frame())["error"] == Reason.FORBIDDEN.value
        with anyio.fail_after(FRAME_TIMEOUT_S), pytest.raises(ConnectionClosed):
            await client.ws.recv()
        assert client.ws.close_code == CODES[Reason.FORBIDDEN].ws_close


async def test_a_token_that_expires_while_live_ends_the_session(app: App) -> None:
    """At `exp` plus the leeway: a token taken within the leeway (as REST takes it) opens a
    session that lives until then, not one closed as expired at once."""
    leeway = app.settings.auth.jwt_leeway_s
    assert leeway >= 3
    opened = time.monotonic()
    got, code = await until_closed(app, auth(app.token("zoe", ttl_s=2 - leeway), cursor=None))
    assert code == CODES[Reason.TOKEN_EXPIRED].ws_close
    assert [f["type"] for f in got] == ["ready", "error"]
    assert got[1]["error"] == Reason.TOKEN_EXPIRED.value
    assert time.monotonic() - opened > 1  # (2 s left at most, by the token's whole seconds)


async def test_a_foreign_origin_is_refused_before_the_upgrade(app: App) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(app, origin="https://evil.example"):
            pass
    denied = refused.value.response
    assert denied.status_code == 403
    assert denied.headers["Content-Type"] == "application/problem+json"
    assert orjson.loads(denied.body)["error"] == Reason.FORBIDDEN.value  # a problem, as every error

    async with ws_connect(app, origin=ALLOWED_ORIGIN) as ws:  # the allowlisted origin connects
        await ws.send(auth(app.token("zoe")))
        with anyio.fail_after(FRAME_TIMEOUT_S):
            assert orjson.loads(await ws.recv())["type"] == "change"


async def test_plain_http_to_the_websocket_path_is_told_to_upgrade(app: App) -> None:
    response = await app.http.get("/v1/ws")
    assert (response.status_code, response.json()["error"]) == (400, Reason.MALFORMED.value)
    assert "WebSocket" in response.json()["detail"]


async def test_a_frame_nested_too_deeply_is_malformed(app: App) -> None:
    deep = '{"x": ' + "[" * 5000 + "]" * 5000 + ', "type": "ping"}'
    await assert_closed(app, Reason.MALFORMED, deep)


async def test_a_refresh_with_a_garbage_cursor_is_malformed(app: App) -> None:
    async with push_client(app, "zoe", cursor="-.0-0") as client:
        await client.ws.send(auth(app.token("zoe"), cursor="-.0-0"))  # a well-formed one: fine
        await client.ws.send('{"type": "ping"}')
        assert await client.frame() == {"type": "pong"}
        await client.ws.send(auth(app.token("zoe"), cursor="garbage"))
        assert (await client.frame())["error"] == Reason.MALFORMED.value
        with anyio.fail_after(FRAME_TIMEOUT_S), pytest.raises(ConnectionClosed):
            await client.ws.recv()
        assert client.ws.close_code == CODES[Reason.MALFORMED].ws_close


async def test_a_text_frame_that_is_not_utf8_closes_1007_without_a_traceback(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    async with ws_connect(app) as ws:
        await ws.send(b"\xff\xfe", text=True)
        with anyio.fail_after(FRAME_TIMEOUT_S), pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1007
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.records
