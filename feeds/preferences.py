"""Users' preferences, mutes and blocks (user state, kept by rebuilds), and what they hold back.

The fan-out asks `keep` before it writes an inbox item: an item that would newly show (state a)
is dropped when its type is off for the recipient, the recipient muted its actor or its post,
either blocked the other, or its event happened at or before the last such mute or block that
was undone since (the hide marks, `keys.hide_marks`: an undo lets through only what happens
after it). Undo and retraction items always pass, so what did reach the inbox can still be
taken back. It drops a follow between users blocked either way the same way. Home feeds ask
`hidden_until` at read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import WatchError

from schemas import keys
from schemas import preferences as wire
from schemas.errors import Reason, Rejected
from schemas.preferences import Preferences

from . import ranked
from .cluster import client_for
from .graph import FollowOp
from .items import ItemOp
from .scripts import Command, run_checked

Relation = Literal["mutes", "blocks", "muted-posts"]
# a hide mark's field per relation: the other user's or the post's id follows
MARK = {"mutes": "m:", "blocks": "b:", "muted-posts": "p:"}
OFF = "o:"  # a hide mark's field for a type's off period: the type follows (`put`)
_ATTEMPTS = 16  # optimistic retries of `put` before answering "busy"


@dataclass(frozen=True, slots=True)
class Kept:
    """What `PreferenceStore.keep` lets through: per item op, per follow-graph op."""

    items: list[bool]
    follows: list[bool]


def _key(relation: Relation, user: str) -> str:
    if relation == "mutes":
        return keys.mutes(user)
    return keys.blocks(user) if relation == "blocks" else keys.muted_posts(user)


def _hidden(mark: bytes | None, at_ms: int) -> bool:
    return mark is not None and at_ms <= int(mark)


def _marks_of(op: ItemOp) -> tuple[str, str, str, str]:
    """The hide marks that could hold back `op`: of its actor (mute, block), post, and type."""
    return MARK["mutes"] + op.actor, MARK["blocks"] + op.actor, MARK["muted-posts"] + op.post, OFF + op.verb


def _off_then(period: bytes | None, at_ms: int) -> bool:
    """Whether `at_ms` is in a type's off period (`START-END`, END empty while off)."""
    if period is None:
        return False
    start, _, end = period.partition(b"-")
    return int(start) <= at_ms and (not end or at_ms <= int(end))


class PreferenceStore:
    """The only code that reads or writes `pref: mute: mutep: block: hide:`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, user: str) -> Preferences:
        raw = await self._redis.get(keys.preferences(user))
        return wire.DEFAULT if raw is None else wire.decode(raw)

    async def put(self, user: str, prefs: Preferences, at_ms: int) -> None:
        """Store `prefs`; a type turned off or back on moves its off period, the hide mark
        `o:TYPE` = `START-END` (END empty while off): what happened in it stays hidden for
        good, after the type is on again and in a replay, as after a mute. Periods merge into
        one (from the first START), so a rebuild also hides what came between them. A type off
        since before periods were kept has none: what it held back may come back in a replay."""
        stored, marks = keys.preferences(user), keys.hide_marks(user)
        for _ in range(_ATTEMPTS):
            client = await client_for(self._redis, stored)
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch(stored, marks)
                raw = await pipe.get(stored)
                was = set((wire.decode(raw) if raw else wire.DEFAULT).off)
                moved = sorted(was ^ set(prefs.off))
                periods = await pipe.hmget(marks, [OFF + t for t in moved]) if moved else []
                pipe.multi()
                pipe.set(stored, wire.encode(prefs))
                for kind, period in zip(moved, periods, strict=True):
                    start = period.split(b"-", 1)[0].decode() if period else ""
                    if kind in was and start:  # back on: the period ends now
                        pipe.hset(marks, OFF + kind, f"{start}-{at_ms}")
                    elif kind in was:  # off since before periods were kept (2026-12-07): unknown
                        pass  # start; hiding from 0 would hide what was delivered before it
                    else:  # off from now (or again: from the first START on)
                        pipe.hset(marks, OFF + kind, f"{start or at_ms}-")
                try:
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise Rejected(Reason.UNAVAILABLE, "the preferences kept changing; retry")

    async def relate(self, user: str, relation: Relation, other: str, on: bool, at_ms: int) -> bool:
        """Mute or block `other` (a post for muted-posts) (on), or undo it; True if that changed
        anything. The hide mark moves to `at_ms` (a block's on both users), so that what happened
        until now stays hidden after an undo; an undo of nothing moves nothing (it would hide for
        good what the other did until now). The mark is written before the relation changes: a
        retry after a failure in between finds the relation and writes both again."""
        if not on and await self._redis.zscore(_key(relation, user), other) is None:
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.hide_marks(user), MARK[relation] + other, at_ms)
            if relation == "blocks":
                pipe.hset(keys.hide_marks(other), MARK[relation] + user, at_ms)
            if on:
                pipe.zadd(_key(relation, user), {other: at_ms}, nx=True)
            else:
                pipe.zrem(_key(relation, user), other)
            replies = await pipe.execute()
        if on:  # after the relation is written (a cluster's pipeline orders no two slots)
            await self._redis.incr(keys.relations_changed())
        return bool(replies[-1])

    async def relations_changed(self) -> int:
        """The count of mutes, muted posts and blocks added so far (keys.relations_changed)."""
        return int(await self._redis.get(keys.relations_changed()) or 0)

    async def page(
        self, user: str, relation: Relation, before: tuple[int, str] | None, limit: int
    ) -> ranked.Ranked:
        return await ranked.page(self._redis, _key(relation, user), before, limit)

    async def keep(self, items: Sequence[ItemOp], follows: Sequence[FollowOp] = ()) -> Kept:
        """Per item op, whether the recipient's preferences let it be written; per follow-graph
        op, whether it may be written: a follow (state a) between users who block each other
        (either way), or that happened at or before their last block or unblock, is dropped; an
        unfollow always passes. Whatever the order a block and a follow are applied in, the
        follow ends severed (feeds/hiding.py severs the follows a block finds).

        One round trip asks each recipient (a follow's: the followed user) whether they have
        preferences or hide marks; most have neither, and only if some do, a second reads them
        and the relations. The marks stand for every relation: each mute, muted post and block
        leaves one (a block in both users', `relate` writes them first) and nothing removes
        them, so a recipient without marks mutes nothing and blocks nobody, nor is blocked."""
        checked = [i for i, op in enumerate(items) if op.state == "a" and op.user != op.actor]
        following = [i for i, op in enumerate(follows) if op.state == "a"]
        kept = Kept([True] * len(items), [True] * len(follows))
        users = sorted({items[i].user for i in checked} | {follows[i].user for i in following})
        if not users:
            return kept
        # round 1, one EXISTS per user counting the marks once and the preferences twice: bit 0
        # tells marks, bit 1 preferences
        counts = await run_checked(
            self._redis,
            [("EXISTS", keys.hide_marks(u), keys.preferences(u), keys.preferences(u)) for u in users],
        )
        related = {u for u, n in zip(users, counts, strict=True) if n & 1}
        with_prefs = {u for u, n in zip(users, counts, strict=True) if n & 2}
        # round 2: the preferences of recipients who have any, and the relations of the items
        # and follows one could concern
        prefs = sorted({items[i].user for i in checked} & with_prefs)
        item_reads = [i for i in checked if items[i].user in related]
        follow_reads = [i for i in following if follows[i].user in related]
        if not (prefs or item_reads or follow_reads):
            return kept
        commands: list[Command] = [("GET", keys.preferences(user)) for user in prefs]
        for i in item_reads:
            op = items[i]
            commands += [
                ("ZSCORE", keys.mutes(op.user), op.actor),
                ("ZSCORE", keys.blocks(op.user), op.actor),
                ("ZSCORE", keys.blocks(op.actor), op.user),
                ("ZSCORE", keys.muted_posts(op.user), op.post or "\n"),  # no post: no member
                ("HMGET", keys.hide_marks(op.user), *_marks_of(op)),
            ]
        for i in follow_reads:
            follow = follows[i]
            commands += [
                ("ZSCORE", keys.blocks(follow.follower), follow.user),
                ("ZSCORE", keys.blocks(follow.user), follow.follower),
                ("HGET", keys.hide_marks(follow.follower), "b:" + follow.user),
            ]
        replies = await run_checked(self._redis, commands)
        off = {user: set(wire.decode(raw).off) for user, raw in zip(prefs, replies, strict=False) if raw}
        for i in checked:
            if items[i].verb in off.get(items[i].user, ()):
                kept.items[i] = False
        at = len(prefs)
        for i in item_reads:
            muted, blocked, blocked_by, post_muted, marks = replies[at : at + 5]
            at += 5
            op = items[i]
            now = muted is not None or blocked is not None or blocked_by is not None or post_muted is not None
            marked = any(_hidden(m, op.at_ms) for m in marks[:2]) or (op.post and _hidden(marks[2], op.at_ms))
            marked = marked or _off_then(marks[3], op.at_ms)
            if now or marked:
                kept.items[i] = False
        for i in follow_reads:
            blocked, blocked_by, mark = replies[at : at + 3]
            at += 3
            if blocked is not None or blocked_by is not None or _hidden(mark, follows[i].at_ms):
                kept.follows[i] = False
        return kept

    async def hidden_until(self, reader: str, authors: Iterable[str]) -> dict[str, float]:
        """Of `authors`, those whose posts `reader` must not see up to a time (ms): every post
        (infinity) while `reader` mutes or blocks them or is blocked by them, else those posted
        at or before the last such mute or block that was undone."""
        names = sorted(set(authors))
        if not names:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(keys.mutes(reader), names)
            pipe.zmscore(keys.blocks(reader), names)
            pipe.hmget(keys.hide_marks(reader), [f for a in names for f in ("m:" + a, "b:" + a)])
            for author in names:
                pipe.zscore(keys.blocks(author), reader)
            muted, blocked, marks, *blocked_by = await pipe.execute()
        until: dict[str, float] = {}
        for n, (a, m, b, by) in enumerate(zip(names, muted, blocked, blocked_by, strict=True)):
            if m is not None or b is not None or by is not None:
                until[a] = math.inf
            elif seen := [int(x) for x in marks[2 * n : 2 * n + 2] if x is not None]:
                until[a] = max(seen)
        return until
