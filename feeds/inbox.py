"""Users' notification inboxes: aggregated groups, unread state and the change log they feed.

Every write to an inbox is atomic (Lua; or, with the opt-in direct apply, a MULTI/EXEC fenced
by WATCH: feeds/direct.py); a batch of writes is one pipelined round trip, several items to a
script call. Writes are idempotent and order-insensitive (see lua/apply.lua).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import orjson
from redis.asyncio import Redis

from schemas import keys, layouts
from schemas.cursor import Cursor

from .cluster import Cluster, calls_of, error_reply, shard_of, slot_of
from .direct import DirectApply
from .horizon import REFUSED, BeyondHorizon
from .items import ItemOp
from .limits import FeedLimits
from .scripts import head, run_commands, scripts_for, user_keys, user_states

# Items per apply script call: they share a call's fixed cost, ~170,000 Redis instructions (the
# script's prologue, which makes common.lua's functions anew each call, PUBSUB NUMSUB, the reply),
# and a user's items in one call share the read and write of their state (`python -m
# loadtest.applycost --callgrind`: 129,500 instructions per item at 8 items a call, 115,400 at 16,
# 110,200 at 32, 105,000 at 64), and a call holds Redis for at most this many items (under 30 µs
# of CPU each on a 2-vCPU benchmark machine, loadtest.clusterbench: under 1 ms).
ITEMS_PER_CALL = 32


@dataclass(frozen=True, slots=True)
class InboxPage:
    groups: list[bytes]  # each a JSON object, newest first
    more: bool
    unread: int
    cursor: str  # change-log cursor as of this read: resume the WebSocket from here
    unseen: int = 0  # groups newer than the seen mark (the badge)
    seen_at: int = 0  # the seen mark (ms; 0: never marked)

    @property
    def next_before(self) -> str | None:
        """Opaque cursor for the next page, or None on the last page."""
        if not self.more or not self.groups:
            return None
        return _page_cursor(self.groups[-1])


def _refused(op: ItemOp) -> BeyondHorizon:
    return BeyondHorizon(f"{op.item} at {op.at_ms} of {op.user}")


def _page_cursor(group_json: bytes) -> str:
    group = orjson.loads(group_json)
    return f"{group['last_at']}:{group['id']}"


class Inbox:
    """With `changelog`, the only code that reads or writes the inbox keys (`ni: nb: na: nr: nc:`)."""

    def __init__(self, redis: Redis, limits: FeedLimits, *, direct: bool = False) -> None:
        """`direct`: on one Redis, apply the items of users nobody listens to from here, in
        plain commands (feeds/direct.py); else every item by lua/apply.lua (the default: see
        README "Performance" for what each costs)."""
        self._redis = redis
        self._limits = limits
        self._scripts = scripts_for(redis)
        self._direct = DirectApply(redis, limits) if direct and not isinstance(redis, Cluster) else None

    @property
    def redis(self) -> Redis:
        return self._redis

    def _head(self, user: str) -> list[str | int | bytes]:
        return head(user, self._limits)

    async def apply(self, ops: Sequence[ItemOp], tags: Sequence[str] = ()) -> list[BaseException | None]:
        """Apply `ops` in one round trip, ITEMS_PER_CALL to a script call (on a cluster, the
        users of one call share a master); the error of each op that failed (`BeyondHorizon`:
        refused, see feeds/horizon.py), else None. `tags` (one per op, optional:
        changelog.push_tag) ride on the changes published for live push: the event's acceptance
        time and trace context.

        On a cluster an op that failed runs once more in a call of its own slot: its master may
        have changed (a migration, a failover), which only a call declaring its keys learns."""
        if not ops:
            return []
        tags = list(tags) or [""] * len(ops)
        errors: list[BaseException | None] = [None] * len(ops)
        scripted: Sequence[int] = range(len(ops))
        if self._direct is not None:
            done, scripted = await self._direct.apply(ops, scripted)
            for i, result in done.items():
                errors[i] = _refused(ops[i]) if result == REFUSED else None
        for i, error in zip(scripted, await self._calls(ops, tags, scripted, shard_of), strict=True):
            errors[i] = error
        failed = [i for i, e in enumerate(errors) if e is not None and not isinstance(e, BeyondHorizon)]
        if failed and self._scripts.sharded:
            for i, error in zip(failed, await self._calls(ops, tags, failed, slot_of), strict=True):
                errors[i] = error
        return errors

    async def _calls(
        self,
        ops: Sequence[ItemOp],
        tags: Sequence[str],
        indexes: Sequence[int],
        group: Callable[[Redis, str], str],
    ) -> list[BaseException | None]:
        """The errors of ops[indexes], applied in calls of up to ITEMS_PER_CALL of one group."""
        if not indexes:
            return []
        common = head(None, self._limits)
        # a user's items side by side, in their order (a user's changes keep theirs): a call then
        # carries each of its users once and checks their change log once (lua/apply.lua)
        by_user = sorted(indexes, key=lambda i: ops[i].user)
        chunks = [
            chunk
            for _, chunk in calls_of(
                by_user, lambda i: group(self._redis, keys.toggles(ops[i].user)), ITEMS_PER_CALL
            )
        ]
        commands = []
        for chunk in chunks:
            call_keys: list[str] = []
            args: list[str | int | bytes] = [*common]
            for user, run in groupby(chunk, key=lambda i: ops[i].user):
                items = list(run)
                call_keys.append(keys.toggles(user))  # a user's items key once (lua/apply.lua)
                args.append(len(items))
                for i in items:
                    op = ops[i]
                    token = layouts.register_token(op.event_id)
                    args += (op.item, op.state, op.at_ms, token, op.group_id, op.actor, tags[i])
                    if op.single:  # lua/apply.lua: only they use these
                        args += (op.post, op.comment, op.text)
            commands.append(self._scripts.apply_command(call_keys, args))
        results = await run_commands(self._redis, [self._scripts.apply], commands)
        errors: dict[int, BaseException | None] = {}
        for chunk, result in zip(chunks, results, strict=True):
            for at, i in enumerate(chunk):
                if isinstance(result, BaseException):  # the whole call failed
                    errors[i] = result
                elif result[at] == REFUSED:
                    errors[i] = _refused(ops[i])
                else:
                    errors[i] = None if isinstance(result[at], int) else error_reply(result[at].decode())
        return [errors[i] for i in indexes]

    def take_direct_stats(self) -> dict[str, int]:
        """Items by where the direct apply sent them since the last call (DirectApply.stats);
        empty when it is off."""
        if self._direct is None:
            return {}
        stats = dict(self._direct.stats)
        self._direct.stats.clear()
        return stats

    async def mark_read(self, user: str, group_ids: Sequence[str] | None) -> int:
        """Mark `group_ids` (None: all) read; returns how many were unread."""
        mode = ["all"] if group_ids is None else ["ids", *group_ids]
        marked = await self._scripts.mark_read(self._redis, user_keys(user), [*self._head(user), *mode])
        return int(marked)

    async def page(self, user: str, before: str | None, limit: int) -> InboxPage:
        """Groups newest first; `before` is a previous page's `next_before`."""
        at, after = "", ""
        if before:
            score, _, after = before.partition(":")
            at = str(int(score))
        reply = await self._scripts.page(self._redis, user_keys(user), [*self._head(user), at, after, limit])
        more, unread, epoch, last, check, unseen, seen_at, *groups = reply
        return InboxPage(
            groups=list(groups),
            more=bool(more),
            unread=int(unread),
            cursor=str(Cursor(epoch.decode(), int(last), int(check))),
            unseen=int(unseen),
            seen_at=int(seen_at),
        )

    async def mark_seen(self, user: str, at_ms: int | None) -> tuple[int, int]:
        """Mark the groups up to `at_ms` (None: the newest group's time) seen, not read: the
        mark only moves forward, and a move is logged and pushed (op `seen`). Returns (unseen,
        the seen mark)."""
        args = [*self._head(user), "" if at_ms is None else at_ms]
        unseen, mark = await self._scripts.seen(self._redis, user_keys(user), args)
        return int(unseen), int(mark)

    async def unread(self, user: str) -> int:
        [state] = await user_states(self._redis, [user])
        return state.unread

    async def badge(self, user: str) -> tuple[int, int]:
        """(unread, unseen), from a one-group page."""
        page = await self.page(user, None, 1)
        return page.unread, page.unseen
