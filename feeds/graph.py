"""The follow graph: whom a user follows and who follows them, paged newest first, with counts.

Both sides are kept by `lua/graph_follow.lua` from the same follow/unfollow ops: the followed
user's followers in their slot, the follower's following in theirs. Both resolve by the event's
own time (last writer wins), so the two sides agree whatever order the events are applied in,
and whether or not the follow's notification was dropped (a mute, `off: follow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal, NamedTuple

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import keys
from schemas.events import Event, Follow, Unfollow

from . import ranked
from .cluster import calls_of, slot_of
from .scripts import Arg, Command, Script, run_commands

FOLLOW_SCRIPT = Script(resources.files(__package__).joinpath("lua", "graph_follow.lua").read_text())

Side = Literal["followers", "following"]
# ops per script call (its sides' arguments: 1 + 4 an op): a batch's follows share a few calls
OPS_PER_CALL = 128


class _Side(NamedTuple):
    """One user's following (or followers) side of a batch: its ops' indexes, its two keys
    (registers, list), the other user of each op."""

    ops: list[int]
    keys: list[str]
    others: list[str]
    following: bool


class FollowOp(msgspec.Struct, frozen=True):
    """`follower`'s follow of `user` is `state` (a | i | x) as of (`at_ms`, `event_id`)."""

    follower: str
    user: str
    state: Literal["a", "i", "x"]
    at_ms: int
    event_id: str


def plan(event: Event) -> list[FollowOp]:
    """The following-list change of a follow or unfollow (none for following oneself, which the
    inbox ignores too)."""
    match event:
        case Follow(user=user) if user != event.actor:
            return [FollowOp(event.actor, user, "a", event.at_ms, event.id)]
        case Unfollow(user=user) if user != event.actor:
            return [FollowOp(event.actor, user, "i", event.at_ms, event.id)]
    return []


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    since_ms: int  # time of the follow


@dataclass(frozen=True, slots=True)
class GraphPage:
    members: list[Member]  # newest follow first
    count: int  # the whole list's size
    next_before: str | None  # cursor of the next page (ranked.parse_cursor), None on the last


class FollowGraph:
    """The only code that reads or writes `fo: fe: fr: fg:`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def apply(self, ops: Sequence[FollowOp]) -> list[str | BaseException]:
        """Apply `ops` to both sides in one round trip: per follower (following) and per followed
        user (followers) a side of the script, the sides of one slot (a single Redis: all)
        sharing calls of up to OPS_PER_CALL ops; per op the follow's state once applied (a | i |
        x), or the error of either side."""
        if not ops:
            return []
        following: dict[str, list[int]] = {}
        followers: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            following.setdefault(op.follower, []).append(i)
            followers.setdefault(op.user, []).append(i)
        sides = [
            _Side(
                idx,
                [keys.following_registers(owner), keys.following(owner)],
                [ops[i].user for i in idx],
                True,
            )
            for owner, idx in following.items()
        ] + [
            _Side(
                idx,
                [keys.follower_registers(owner), keys.followers(owner)],
                [ops[i].follower for i in idx],
                False,
            )
            for owner, idx in followers.items()
        ]
        calls = calls_of(
            range(len(sides)),
            lambda n: slot_of(self._redis, sides[n].keys[0]),
            OPS_PER_CALL,
            lambda n: len(sides[n].ops),
        )
        commands: list[Command] = []
        for _, call in calls:
            call_keys: list[str] = []
            args: list[Arg] = []
            for n in call:
                side = sides[n]
                call_keys += side.keys
                args.append(len(side.ops))
                for i, other in zip(side.ops, side.others, strict=True):
                    args += (other, ops[i].state, ops[i].at_ms, ops[i].event_id)
            commands.append(FOLLOW_SCRIPT.command(call_keys, args))
        results = await run_commands(self._redis, [FOLLOW_SCRIPT], commands)
        states: list[str | BaseException] = [ResponseError("not applied")] * len(ops)
        errors: dict[int, BaseException] = {}
        for (_, call), result in zip(calls, results, strict=True):
            for at, n in enumerate(call):  # the whole call failed, a side failed, or a state per op
                got = result if isinstance(result, BaseException) else result[at]
                if isinstance(got, bytes):
                    got = ResponseError(got.decode())
                for k, i in enumerate(sides[n].ops):
                    if isinstance(got, BaseException):
                        errors[i] = got
                    elif sides[n].following:  # the following side's state: what the home feed acts on
                        states[i] = got[k].decode()
        return [errors.get(i, state) for i, state in enumerate(states)]

    async def sever(self, follower: str, user: str, at_ms: int, event_id: str) -> None:
        """Undo `follower`'s follow of `user` as of `at_ms`, or of its own time if later (a
        block: it must win over whatever follow was applied before it)."""
        old = await self._redis.hget(keys.following_registers(follower), user)
        since = int(old.split(b" ")[1]) if old else 0
        for state in await self.apply([FollowOp(follower, user, "i", max(at_ms, since), event_id)]):
            if isinstance(state, BaseException):
                raise state

    async def page(self, user: str, side: Side, before: tuple[int, str] | None, limit: int) -> GraphPage:
        """`user`'s followers or following, newest follow first, after the `before` position."""
        key = keys.followers(user) if side == "followers" else keys.following(user)
        got = await ranked.page(self._redis, key, before, limit)
        return GraphPage([Member(m, at) for m, at in got.members], got.count, got.next_before)

    async def follows(self, follower: str, user: str) -> bool:
        """Whether `follower` follows `user` now."""
        return await self._redis.zscore(keys.following(follower), user) is not None

    async def counts(self, user: str) -> tuple[int, int]:
        """(followers, following) of `user`."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.followers(user))
            pipe.zcard(keys.following(user))
            followers, following = await pipe.execute()
        return int(followers), int(following)
