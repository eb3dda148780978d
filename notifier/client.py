"""An asyncio client of a user's live inbox: loads it over REST, follows it over the WebSocket,
keeps the cursor, resumes after any disconnect with jittered backoff, reloads on `refetch`,
refreshes the token before it expires, and stops for good on the close codes that say retrying
cannot help (4400, 4401, 4403)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

FATAL_CLOSES: Final = frozenset({4400, 4401, 4403})  # a bad frame, a bad token, another user
MIN_REFRESH_S: Final = 0.5  # never faster: the gateway limits client frames (4429)

TokenSource = Callable[[], Awaitable[str]]  # a fresh token for the same user, each call
# the inbox over REST: groups, unread, cursor; for the whole inbox, every page (follow `next`,
# concatenate `groups`) with the first page's cursor and counts
Loader = Callable[[], Awaitable[Mapping[str, Any]]]
Json = dict[str, Any]


class ClientStopped(Exception):
    """The gateway closed with a code after which reconnecting cannot help."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Inbox:
    """The inbox as the client sees it: groups by id and the unread count."""

    groups: dict[str, Json] = field(default_factory=dict)
    unread: int = 0
    unseen: int = 0  # the badge: groups active after the seen mark
    seen_at: int = 0  # the seen mark (ms; 0: never marked): groups active after it are new

    def load(self, page: Mapping[str, Any]) -> None:
        self.groups = {g["id"]: g for g in page["groups"]}
        self.unread = int(page["unread"])
        self.unseen = int(page.get("unseen", 0))
        self.seen_at = int(page.get("seen_at", 0))

    def apply(self, change: Mapping[str, Any]) -> None:
        op = change["op"]
        if op == "upsert":
            self.groups[change["group"]["id"]] = change["group"]
            for gid in change.get("dropped", ()):  # what the inbox cap removed to make room
                self.groups.pop(gid, None)
        elif op == "remove":
            self.groups.pop(change["id"], None)
        elif op == "read":
            ids = self.groups if change.get("all") else change.get("groups", [])
            for gid in ids:
                if gid in self.groups:
                    self.groups[gid] = {**self.groups[gid], "read": True}
        elif op == "seen":
            self.seen_at = int(change["seen_at"])
        if "unread" in change:
            self.unread = int(change["unread"])
        if "unseen" in change:
            self.unseen = int(change["unseen"])


def expires_at(token: str) -> float | None:
    """The token's `exp` (unix seconds), read without verifying: only to plan the refresh."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


class InboxClient:
    """`await client.run()` until `stop()` (or a fatal close, raised as ClientStopped).
    `inbox` is the state; `cursor` the last position seen (opaque); `on_change(inbox)` is called
    after every change, load and reload; `on_feed(change)` with every home-feed change (`add`
    with the post, or `remove`), which moves the cursor too; `on_refetch()` after a `refetch`
    reloaded the inbox: reload the home feed there."""

    def __init__(
        self,
        url: str,
        token: TokenSource,
        load: Loader,
        *,
        on_change: Callable[[Inbox], None] | None = None,
        on_feed: Callable[[Json], None] | None = None,
        on_refetch: Callable[[], None] | None = None,
        backoff_base_s: float = 0.25,
        backoff_cap_s: float = 10.0,
        refresh_margin_s: float = 30.0,
    ) -> None:
        self.url = url
        self.inbox = Inbox()
        self.cursor: str | None = None
        self.closes: list[int] = []  # every close code seen, in order
        self.ready = asyncio.Event()  # set while live, cleared on a disconnect
        self._token = token
        self._load = load
        self._on_change = on_change
        self._on_feed = on_feed
        self._on_refetch = on_refetch
        self._base_s = backoff_base_s
        self._cap_s = backoff_cap_s
        self._margin_s = refresh_margin_s
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            if await self._attempt():
                failures = 0
            else:
                failures += 1
            if self._stopped.is_set():
                return
            delay = random.uniform(0, min(self._cap_s, self._base_s * 2**failures))  # full jitter
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)

    async def _attempt(self) -> bool:
        try:
            if self.cursor is None:
                await self._reload()
            return await self._session()
        except ClientStopped:
            raise
        except Exception as exc:
            # the loader and token source are the caller's code (any HTTP library): a failed
            # load is retried like a disconnect; the cursor is unchanged, so the gateway asks
            # for the refetch again
            log.warning("inbox client: %s: %s; retrying", type(exc).__name__, exc)
            return False

    async def _reload(self) -> None:
        page = await self._load()
        self.inbox.load(page)
        self.cursor = str(page["cursor"])
        self._changed()

    async def _session(self) -> bool:
        """One connection, until it closes; True when it got as far as `ready`."""
        went_live = False
        try:
            token = await self._token()
            async with connect(self.url, open_timeout=10, close_timeout=2, proxy=None) as ws:
                auth: Json = {"type": "auth", "token": token}
                if self.cursor is not None:
                    auth["cursor"] = self.cursor
                await ws.send(json.dumps(auth))
                refresher = asyncio.ensure_future(self._refresh(ws, token))
                stopper = asyncio.ensure_future(self._close_on_stop(ws))
                try:
                    async for raw in ws:
                        went_live = await self._handle(json.loads(raw)) or went_live
                finally:
                    refresher.cancel()
                    stopper.cancel()
                    await asyncio.gather(refresher, stopper, return_exceptions=True)
                self._closed(ws)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else 1006
            self._note_close(code, closed.rcvd.reason if closed.rcvd is not None else "")
        except OSError as exc:  # refused, reset, unreachable: the gateway is (re)starting
            log.info("inbox client connect failed: %s", exc)
        finally:
            self.ready.clear()
        return went_live

    def _closed(self, ws: ClientConnection) -> None:
        if self._stopped.is_set():
            return
        code = ws.close_code if ws.close_code is not None else 1006
        self._note_close(code, ws.close_reason or "")

    def _note_close(self, code: int, reason: str) -> None:
        self.closes.append(code)
        log.info("inbox client closed code=%s reason=%s", code, reason)
        if code in FATAL_CLOSES:
            raise ClientStopped(code, reason)

    async def _handle(self, frame: Json) -> bool:
        kind = frame.get("type")
        if kind == "change":
            self.inbox.apply(frame["change"])
            self.cursor = frame["cursor"]
            self._changed()
        elif kind == "feed":
            if self._on_feed is not None:
                self._on_feed(frame["change"])
            self.cursor = frame["cursor"]
        elif kind == "refetch":  # the cursor cannot be resumed: reload, then continue from here
            await self._reload()
            self.cursor = frame["cursor"]
            if self._on_refetch is not None:
                self._on_refetch()
        elif kind == "ready":
            self.cursor = frame["cursor"]
            self.ready.set()
            return True
        return False

    async def _refresh(self, ws: ClientConnection, token: str) -> None:
        """Send a fresh token `refresh_margin_s` before the current one expires (or halfway
        through a life shorter than that), again and again."""
        while True:
            expiry = expires_at(token)
            if expiry is None:
                return
            left_s = expiry - time.time()
            await asyncio.sleep(max(MIN_REFRESH_S, left_s - self._margin_s, left_s / 2))
            token = await self._token()
            await ws.send(json.dumps({"type": "auth", "token": token}))

    async def _close_on_stop(self, ws: ClientConnection) -> None:
        await self._stopped.wait()
        await ws.close()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.inbox)
