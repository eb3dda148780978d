"""Reading a user's change log: resume after a cursor, or learn that the client must refetch.

A cursor (schemas/cursor.py) names one logged change by its number and check. The epoch is
created with the log; if Redis loses the log, a new epoch starts and every old cursor is
refused. A cursor that names no change the log still has (trimmed, past the end, or a number
reused after Redis lost the end of the log) is refused too.

The log keeps what changed (a group id, or the ids read) and the unread count after it; a replay
renders each change from the current views (lua/replay.lua). Live push carries the change as it
was rendered when it happened. Home-feed changes (a post pushed into the feed or taken out,
lua/feed_push.lua) share the log and its numbers, marked FEED_MARK; their replay renders the post
from its author's record as it is now (a post deleted since is replayed as its removal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from schemas import keys, layouts, protocol
from schemas.cursor import NO_EPOCH, Cursor

from .scripts import SCRIPTS, head, user_keys, user_states
from .timeline import live_post


def entry_id(text: str | bytes) -> tuple[int, int]:
    """Parse a stream entry id `MS-SEQ` into a comparable tuple."""
    s = text.decode() if isinstance(text, bytes) else text
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


FEED_MARK: Final = layouts.FEED_MARK  # leads a home-feed change where lua/common.lua publishes or replays one


@dataclass(frozen=True, slots=True)
class Change:
    cursor: Cursor
    payload: bytes  # JSON object: {"op": "upsert"|"remove"|"read", ..., "unread": n}, or a feed's
    feed: bool = False  # a home-feed change (schemas.protocol.feed_added / feed_removed)


@dataclass(frozen=True, slots=True)
class Replay:
    changes: list[Change]  # in log order, at most the requested count


@dataclass(frozen=True, slots=True)
class Refetch:
    """The client's cursor names no change the log still has, or changes after it are gone."""

    tail: Cursor  # resume from here after refetching the inbox


push_tag = layouts.push_tag


_SEPARATOR: Final = layouts.PUBLISHED_SEPARATOR.encode()
_TAG: Final = layouts.TAG_SEPARATOR.encode()
_FEED: Final = FEED_MARK.encode()


class Live:
    """A change as lua/common.lua publishes it for live push: `EPOCH N CHECK[@MS[@TRACEPARENT]]
    [FEED_MARK]PAYLOAD` (schemas/layouts.py; `layouts.parse_published` reads it in full). The
    gateway reads one per pushed message, so this reads from the bytes only the cursor and the
    feed mark; the payload and the tag's parts are decoded when asked. Raises ValueError for a
    message not in this layout."""

    __slots__ = ("_payload", "_tag", "cursor", "feed")

    def __init__(self, message: bytes | str) -> None:
        raw = message.encode() if isinstance(message, str) else message
        epoch, number, tagged, payload = raw.split(_SEPARATOR, 3)
        check, _, self._tag = tagged.partition(_TAG)
        self.cursor = Cursor(epoch.decode(), int(number), int(check))
        self.feed = payload.startswith(_FEED)  # a home-feed change
        self._payload = payload[len(_FEED) :] if self.feed else payload

    @property
    def payload(self) -> str:
        """The change's JSON object (schemas.protocol.change / feed)."""
        return self._payload.decode()

    @property
    def accepted_ms(self) -> str:
        """The push tag's acceptance time, milliseconds ('' when untagged)."""
        return self._tag.partition(_TAG)[0].decode()

    @property
    def traceparent(self) -> str:
        """The push tag's trace context ('' when none)."""
        return self._tag.partition(_TAG)[2].decode()


published = Live  # what a subscriber of `keys.user_channel` reads each message with


async def tail(redis: Redis, user: str) -> Cursor:
    """The cursor of the log's last change (a count of 0 asks lua/replay.lua for only that)."""
    _, epoch, number, check = await SCRIPTS.replay(redis, user_keys(user), [*head(user, None), "", 0, 0, 0])
    return Cursor(epoch.decode(), int(number), int(check))


async def positions(redis: Redis, users: Sequence[str]) -> list[tuple[str, int]]:
    """Each user's log epoch (NO_EPOCH: nothing logged yet) and last change number, from their
    state (`user_states`: a plain read, not `tail`'s script call), for checks that need no
    change's check."""
    return [(state.epoch or NO_EPOCH, state.last_change) for state in await user_states(redis, users)]


async def read_after(redis: Redis, user: str, cursor: Cursor, count: int) -> Replay | Refetch:
    """Up to `count` (> 0) changes after `cursor`, or Refetch if the cursor names no logged
    change or any change after it is gone."""
    args = [*head(user, None), cursor.epoch, cursor.number, cursor.check, count]
    kind, epoch_raw, number, *rest = await SCRIPTS.replay(redis, user_keys(user), args)
    epoch = epoch_raw.decode()
    if kind == b"refetch":
        return Refetch(Cursor(epoch, int(number), int(rest[0])))
    first = int(number)
    pairs = zip(rest[0::2], rest[1::2], strict=True)
    changes = [Change(Cursor(epoch, first + i, int(c)), p) for i, (c, p) in enumerate(pairs)]
    return Replay(await _render_feed(redis, changes))


async def _render_feed(redis: Redis, changes: list[Change]) -> list[Change]:
    """The feed changes of `changes` (FEED_MARK, then the op, OP_FEED_PUSH or OP_FEED_DROP, then
    AUTHOR|POST, as lua/replay.lua gives them) rendered: a push as the post now, if still live,
    else as its removal."""
    mark = FEED_MARK.encode()
    refs = [c.payload[len(mark) :].decode() for c in changes if c.payload.startswith(mark)]
    if not refs:
        return changes
    records: dict[str, bytes | None] = {}
    pushed = sorted({ref[1:] for ref in refs if ref[0] == layouts.OP_FEED_PUSH})
    if pushed:
        async with redis.pipeline(transaction=False) as pipe:
            for member in pushed:
                author, _, post = member.partition("|")
                pipe.hget(keys.post_records(author), post)
            records = dict(zip(pushed, await pipe.execute(), strict=True))
    out: list[Change] = []
    for change in changes:
        if not change.payload.startswith(mark):
            out.append(change)
            continue
        ref = change.payload[len(mark) :].decode()
        record = live_post(records.get(ref[1:])) if ref[0] == layouts.OP_FEED_PUSH else None
        if record is not None:
            payload = protocol.feed_added(record)
        else:
            author, _, post_id = ref[1:].partition("|")
            payload = protocol.feed_removed(author, post_id)
        out.append(Change(change.cursor, payload, feed=True))
    return out
