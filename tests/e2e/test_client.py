"""The Python client (notifier.client) against the real gateway: it loads, follows, refreshes its
token before expiry, resumes after a slow-consumer close, and stops for good on a bad token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from notifier.client import ClientStopped, Inbox, InboxClient
from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from tests.conftest import SettingsFactory

from .harness import App, like, running_app

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

WAIT_S = 15.0


def client_of(
    app: App, user: str, *, ttl_s: float = 600, minted: anyio.Event | None = None, **options: Any
) -> InboxClient:
    """A client of `user` whose token source mints `ttl_s` tokens; `minted` is set once one is
    minted more than a second after the first expired."""
    expiries: list[float] = []

    async def token() -> str:
        fresh = tokens.issue(app.settings.auth, user, ttl_s=ttl_s)
        expiries.append(tokens.verify(fresh, app.settings.auth).expires_at)
        if minted is not None and expiries[-1] >= expiries[0] + ttl_s + 1:
            minted.set()
        return fresh

    async def load() -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {tokens.issue(app.settings.auth, user)}"}
        response = await app.http.get("/v1/me/notifications?limit=100", headers=headers)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    return InboxClient(app.ws_url, token, load, **options)


@contextlib.asynccontextmanager
async def following(client: InboxClient) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.run)
        with anyio.fail_after(WAIT_S):
            await client.ready.wait()
        yield
        client.stop()


def until(changed: anyio.Event, test: Callable[[Inbox], bool]) -> Callable[[Inbox], None]:
    def on_change(inbox: Inbox) -> None:
        if test(inbox):
            changed.set()

    return on_change


async def test_the_token_is_refreshed_before_it_expires(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    async with running_app(settings_factory(), redis) as app:
        got, minted = anyio.Event(), anyio.Event()
        on_change = until(got, lambda i: i.unread == 1)
        client = client_of(app, "rita", ttl_s=3, minted=minted, refresh_margin_s=1.5, on_change=on_change)
        async with following(client):
            with anyio.fail_after(WAIT_S):
                await minted.wait()  # the session outlived its first token
                await app.accept(like("r-1", "fan", "p-1", "rita"))
                await app.worker.drain()
                await got.wait()
        assert client.closes == []  # one session throughout, never closed 4419
        assert len(client.inbox.groups) == client.inbox.unread == 1


async def test_a_slow_consumer_is_closed_and_resumes(redis: Redis, settings_factory: SettingsFactory) -> None:
    settings = settings_factory({"NOTIFIER_GATEWAY_SEND_QUEUE_FRAMES": "1"})
    async with running_app(settings, redis) as app:
        done = anyio.Event()
        client = client_of(app, "sam", on_change=until(done, lambda i: len(i.groups) == 40))
        async with following(client):
            await app.accept(*(like(f"s-{n}", "fan", f"p-{n}", "sam", t=n) for n in range(40)))
            await app.worker.drain()
            with anyio.fail_after(WAIT_S):
                await done.wait()
        assert 4504 in client.closes
        assert client.inbox.unread == 40


async def test_a_bad_token_stops_the_client(redis: Redis, settings_factory: SettingsFactory) -> None:
    async with running_app(settings_factory(), redis) as app:

        async def forged() -> str:
            return tokens.issue(AuthSettings(jwt_secret="x" * 40), "tom")

        async def load() -> dict[str, Any]:
            return {"groups": [], "unread": 0, "cursor": None}

        client = InboxClient(app.ws_url, forged, load)
        with anyio.fail_after(WAIT_S), pytest.raises(ClientStopped) as stopped:
            await client.run()
        assert (stopped.value.code, client.closes) == (4401, [4401])
