"""What the system shows: inboxes and change logs read through the product's own `feeds` code,
dead letters and consumer-group state from Redis, and WebSocket clients that record every
change frame, reconnect with their last cursor and refetch over REST when told to."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx
import orjson
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from feeds.changelog import Refetch, read_after
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from notifier.runtime import eventlog
from schemas import keys
from schemas.cursor import START, Cursor
from schemas.events import decode_stored

from .harness import wait_until

Json = dict[str, Any]
PAGE: Final = 100
LOG_BATCH: Final = 1000


async def inbox_group_ids(redis: Redis, user: str) -> set[str]:
    """Every group id in `user`'s inbox, paging the whole of it."""
    inbox = Inbox(redis, FeedLimits())
    ids: set[str] = set()
    before: str | None = None
    while True:
        page = await inbox.page(user, before, PAGE)
        ids.update(orjson.loads(group)["id"] for group in page.groups)
        before = page.next_before
        if before is None:
            return ids


async def changelog_upserts(redis: Redis, user: str) -> Counter[str]:
    """How many `upsert` changes `user`'s change log holds for each group (creations included)."""
    counts: Counter[str] = Counter()
    cursor = START
    while True:
        result = await read_after(redis, user, cursor, LOG_BATCH)
        if isinstance(result, Refetch):
            raise AssertionError(f"{user}'s change log was trimmed: raise NOTIFIER_FEEDS_MAX_CHANGES")
        for change in result.changes:
            data = orjson.loads(change.payload)
            if data.get("op") == "upsert":
                counts[data["group"]["id"]] += 1
        if len(result.changes) < LOG_BATCH:
            return counts
        cursor = result.changes[-1].cursor


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    event_id: str
    deliveries: int
    error: str


def _event_id(fields: dict[bytes, bytes]) -> str:
    """A dead letter's event id: from the stored event, or the JSON an earlier version stored;
    "?" for the letter of an entry lost before processing (no event)."""
    if (stored := fields.get(eventlog.EVENT.encode())) is not None:
        return decode_stored(stored).id
    if (legacy := fields.get(eventlog.EVENT_JSON.encode())) is not None:
        return str(orjson.loads(legacy)["id"])
    return "?"


async def dead_letters(redis: Redis, partitions: int) -> list[DeadLetter]:
    """Every dead-letter entry of every partition."""
    out: list[DeadLetter] = []
    for p in range(partitions):
        for _, fields in await redis.xrange(keys.dead_letters(p)):
            event_id = _event_id(fields)
            deliveries = int(fields.get(b"deliveries", b"0"))
            out.append(DeadLetter(p, event_id, deliveries, fields.get(b"error", b"").decode()))
    return out


async def partition_backlogs(redis: Redis, partitions: int) -> list[int]:
    """Per partition, the entries the fan-out group has not read or not acknowledged yet."""
    out: list[int] = []
    for p in range(partitions):
        stream = keys.events(p)
        try:
            groups = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream: nothing to do there
            out.append(0)
            continue
        group = next((g for g in groups if g["name"] == keys.FANOUT_GROUP.encode()), None)
        if group is None:
            out.append(int(await redis.xlen(stream)))
            continue
        lag = group.get("lag")
        if lag is None:  # unknown after deletions: compare positions instead
            info = await redis.xinfo_stream(stream)
            lag = 0 if info["last-generated-id"] == group["last-delivered-id"] else 1
        out.append(int(lag) + int(group["pending"]))
    return out


async def backlog(redis: Redis, partitions: int) -> int:
    return sum(await partition_backlogs(redis, partitions))


async def quiesce(redis: Redis, partitions: int, timeout_s: float) -> float:
    """Wait until fan-out has read and acknowledged everything; the seconds it took."""

    async def drained() -> bool:
        return await backlog(redis, partitions) == 0

    return await wait_until(drained, timeout_s, what="fan-out drained", interval_s=0.1)


async def pending_of(redis: Redis, partitions: int, consumer: str) -> list[bytes]:
    """Entry ids pending for `consumer` (read, not yet acknowledged) on every partition."""
    out: list[bytes] = []
    for p in range(partitions):
        try:
            rows = await redis.xpending_range(
                keys.events(p), keys.FANOUT_GROUP, "-", "+", 1000, consumername=consumer
            )
        except ResponseError:
            continue
        out += [row["message_id"] for row in rows]
    return out


async def has_group(redis: Redis, partition: int) -> bool:
    try:
        groups = await redis.xinfo_groups(keys.events(partition))
    except ResponseError:
        return False
    return any(g["name"] == keys.FANOUT_GROUP.encode() for g in groups)


@dataclass(eq=False)
class PushClient:
    """One user's WebSocket client. `upserts` counts the change frames per group (a comment
    group is created exactly once, so a count above 1 is a duplicate); `seen` holds every group
    known from change frames or from a refetch of the inbox over REST."""

    user: str
    ws_url: str
    http: httpx.AsyncClient
    token: str
    cursor: str | None = None
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (cursor, op, group id)
    upserts: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)  # group id -> time.monotonic()
    disorder: list[str] = field(default_factory=list)  # cursors not after the previous one
    seen: set[str] = field(default_factory=set)
    refetches: int = 0
    connects: int = 0
    drops: list[str] = field(default_factory=list)
    errors: list[Json] = field(default_factory=list)
    ready: anyio.Event = field(default_factory=anyio.Event)
    _ws: ClientConnection | None = None

    async def run(self) -> None:
        """Connect, authenticate (resuming after `cursor`), record frames; reconnect forever."""
        while True:
            try:
                async with connect(
                    self.ws_url, proxy=None, open_timeout=10, close_timeout=2, compression=None
                ) as ws:
                    self._ws = ws
                    self.connects += 1
                    auth: Json = {"type": "auth", "token": self.token}
                    if self.cursor is not None:
                        auth["cursor"] = self.cursor
                    await ws.send(orjson.dumps(auth).decode())
                    async for raw in ws:
                        await self._on_frame(orjson.loads(raw))
                    self.drops.append(f"closed {ws.close_code} {ws.close_reason}")
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                self.drops.append(repr(exc))
            finally:
                self._ws = None
            await anyio.sleep(random.uniform(0.05, 0.3))  # reconnect backoff

    async def disconnect(self) -> None:
        """Close from the client side; `run` reconnects with the last cursor."""
        if self._ws is not None:
            await self._ws.close()

    async def _on_frame(self, frame: Json) -> None:
        kind = frame.get("type")
        if kind == "change":
            change = frame["change"]
            op = str(change.get("op"))
            gid = change["group"]["id"] if op == "upsert" else str(change.get("id", ""))
            self.changes.append((frame["cursor"], op, gid))
            if op == "upsert":
                self.upserts[gid] += 1
                self.first_seen.setdefault(gid, time.monotonic())
                self.seen.add(gid)
            self._check_order(frame["cursor"])
            self.cursor = frame["cursor"]
        elif kind == "refetch":
            self.refetches += 1
            self.seen |= await self._refetch()
            self.cursor = frame["cursor"]
        elif kind == "ready":
            self.cursor = frame["cursor"]
            self.ready.set()
        elif kind == "error":
            self.errors.append(frame)

    def _check_order(self, cursor: str) -> None:
        """Within one epoch, every change comes after the one before it (per-reader monotonicity)."""
        if self.cursor is None:
            return
        last, new = Cursor.parse(self.cursor), Cursor.parse(cursor)
        if new.epoch == last.epoch and new.number <= last.number:
            self.disorder.append(f"{cursor} after {self.cursor}")

    async def _refetch(self) -> set[str]:
        """The whole inbox over REST (GET /v1/me/notifications), retried while storage is down."""
        headers = {"Authorization": f"Bearer {self.token}"}
        ids: set[str] = set()
        before: str | None = None
        while True:
            params = {"limit": str(PAGE), **({"before": before} if before else {})}
            try:
                response = await self.http.get("/v1/me/notifications", params=params, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is None or response.status_code >= 500:
                await anyio.sleep(0.2)  # pacing the retry
                continue
            response.raise_for_status()
            body = response.json()
            ids.update(group["id"] for group in body["groups"])
            before = body.get("next")
            if before is None:
                return ids

    def duplicates(self) -> dict[str, int]:
        return {gid: n for gid, n in self.upserts.items() if n > 1}


async def connect_once(ws_url: str, token: str, cursor: str | None = None) -> tuple[list[Json], int | None]:
    """One session: authenticate, read until the gateway closes it (at most 10 s); its frames
    and close code (None if it stayed open)."""
    frames: list[Json] = []
    auth: Json = {"type": "auth", "token": token, **({"cursor": cursor} if cursor else {})}
    async with connect(ws_url, proxy=None, open_timeout=10, close_timeout=2, compression=None) as ws:
        await ws.send(orjson.dumps(auth).decode())
        with anyio.move_on_after(10):
            try:
                async for raw in ws:
                    frames.append(orjson.loads(raw))
            except ConnectionClosed:
                pass
        return frames, ws.close_code


async def missing_from_clients(redis: Redis, clients: Sequence[PushClient]) -> dict[str, set[str]]:
    """Per client (`user#index`), the groups of its user's inbox it has not seen."""
    out: dict[str, set[str]] = {}
    for i, client in enumerate(clients):
        missing = await inbox_group_ids(redis, client.user) - client.seen
        if missing:
            out[f"{client.user}#{i}"] = missing
    return out


async def wait_clients_caught_up(redis: Redis, clients: Sequence[PushClient], timeout_s: float) -> float:
    """Wait until every client has seen its whole inbox; on timeout the checker reports the rest."""

    async def caught_up() -> bool:
        return not await missing_from_clients(redis, clients)

    try:
        return await wait_until(caught_up, timeout_s, what="push clients caught up", interval_s=0.1)
    except TimeoutError:
        return timeout_s


async def start_clients(tg: TaskGroup, clients: Sequence[PushClient], timeout_s: float = 30.0) -> None:
    """Run every client in `tg`; return once each has had its `ready` frame."""
    for client in clients:
        tg.start_soon(client.run)
    with anyio.fail_after(timeout_s):
        for client in clients:
            await client.ready.wait()
