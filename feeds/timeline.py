"""Authors' timelines: each author's live posts, newest first, kept from post_created and
post_deleted in the author's slot (`lua/timeline_apply.lua`). A deletion is final whatever the
order the two arrive in. The timeline is what a home feed is built from (issue 16)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import keys
from schemas.events import Event, PostCreated, PostDeleted

from . import ranked
from .limits import FeedLimits
from .scripts import Arg, Command, Script, run_commands

APPLY_SCRIPT = Script(resources.files(__package__).joinpath("lua", "timeline_apply.lua").read_text())


@dataclass(frozen=True, slots=True)
class PostOp:
    """`author`'s `post` is live with `record` (state a) or deleted for good (x), as of
    (`at_ms`, `event_id`); `accepted_ms`: when the event log accepted the event (a deletion's
    tombstone is kept `FeedLimits.post_tombstone_ms` from then)."""

    author: str
    post: str
    state: Literal["a", "x"]
    at_ms: int
    event_id: str
    record: bytes = b""
    accepted_ms: int = 0


def plan(event: Event, accepted_ms: int = 0) -> list[PostOp]:
    match event:
        case PostCreated(post=post, kind=kind, text=text, visibility=visibility):
            record = {
                "id": post,
                "author": event.actor,
                "kind": kind,
                "text": text,
                "visibility": visibility,
                "at": event.at_ms,
            }
            return [PostOp(event.actor, post, "a", event.at_ms, event.id, orjson.dumps(record), accepted_ms)]
        case PostDeleted(post=post):
            return [PostOp(event.actor, post, "x", event.at_ms, event.id, b"", accepted_ms)]
    return []


def live_post(register: bytes | None) -> bytes | None:
    """The post's JSON record if `register` (its `keys.post_records` field) says it is live."""
    if register is None or not register.startswith(b"a "):
        return None
    return register.partition(b"\n")[2]


def followers_only(post: bytes) -> bool:
    """Whether a post (`live_post`'s JSON, as `plan` builds it) is for its author's followers."""
    return bool(orjson.loads(post)["visibility"] == "followers")


def live_time_ms(register: bytes | None) -> int | None:
    """The time of the post's live creation (its place in the timeline), or None."""
    if register is None or not register.startswith(b"a "):
        return None
    return int(register.split(b" ", 2)[1])


@dataclass(frozen=True, slots=True)
class TimelinePage:
    posts: list[bytes]  # each a JSON object (id, author, kind, text, visibility, at), newest first
    count: int  # live posts kept
    next_before: str | None  # cursor of the next page (ranked.parse_cursor), None on the last


class Timelines:
    """The only code that writes `tp:`, `tl:` and `tx:`."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits

    async def apply(self, ops: Sequence[PostOp]) -> list[str | BaseException]:
        """Apply `ops` in one round trip, one script call per author; per op the post's state once
        applied (a live, x deleted, empty: not kept), or the error."""
        if not ops:
            return []
        by_author: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            by_author.setdefault(op.author, []).append(i)
        commands: list[Command] = []
        for author, indexes in by_author.items():
            horizon_ms = max(ops[i].accepted_ms for i in indexes) - self._limits.post_tombstone_ms
            args: list[Arg] = [self._limits.max_posts, horizon_ms]
            for i in indexes:
                op = ops[i]
                args += (op.post, op.state, op.at_ms, op.event_id, op.record, op.accepted_ms)
            post_keys = [keys.post_records(author), keys.timeline(author), keys.post_tombstones(author)]
            commands.append(APPLY_SCRIPT.command(post_keys, args))
        results = await run_commands(self._redis, [APPLY_SCRIPT], commands)
        states: list[str | BaseException] = [ResponseError("not applied")] * len(ops)
        for indexes, result in zip(by_author.values(), results, strict=True):
            for n, i in enumerate(indexes):  # the whole call failed, or one state per op
                states[i] = result if isinstance(result, BaseException) else result[n].decode()
        return states

    async def page(self, author: str, before: tuple[int, str] | None, limit: int) -> TimelinePage:
        """`author`'s live posts, newest first, after the `before` position. A post deleted
        between the two reads is left out (the page is then shorter)."""
        got = await ranked.page(self._redis, keys.timeline(author), before, limit)
        posts: list[bytes] = []
        if got.members:
            records = await self._redis.hmget(keys.post_records(author), [m for m, _ in got.members])
            posts = [p for p in map(live_post, records) if p is not None]
        return TimelinePage(posts, got.count, got.next_before)
