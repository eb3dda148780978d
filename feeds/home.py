"""Home feeds: the posts of the accounts a user follows, newest first, by hybrid fan-out.

An author with fewer than `celebrity_followers` followers when a post is applied has it pushed
into each follower's `keys.home` (in chunks of PUSH_CHUNK followers, so a big fan-out is many
short round trips, never one long one); from that many on, the author joins
`keys.pulled_authors` and their timeline is merged into their followers' feeds at read time.
The choice is made per post, so crossing the threshold either way loses nothing: an author who
ever published a read-merged post stays merged (their pushed posts and merged ones are the same
members, shown once).

What is shown is decided at read: a post shows while it is live in its author's timeline and
its author is followed (and not muted, nor blocked either way, nor was when the post was
made: feeds/preferences.py). So a deletion or an unfollow
hides at once whatever order it is applied in with its counterpart; the write-time clean-up
(`retract_post`, `drop_author`) only frees room. A follow back-fills the author's recent posts,
so a follow applied after the posts it should show does not miss them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from schemas import keys

from . import ranked
from .limits import FeedLimits
from .preferences import PreferenceStore
from .scripts import Command, run_commands

PUSH_CHUNK = 1_000  # followers written per round trip of a fan-out


def member(author: str, post: str) -> str:
    """A home feed's member for `post` (ids never hold `|`: schemas.events.ID_PATTERN)."""
    return f"{author}|{post}"


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[bytes]  # post JSON records (timeline.py), newest first
    next_before: str | None  # cursor of the next page (ranked.parse_cursor), None on the last


class HomeFeeds:
    """The only code that reads or writes `hf:` and `feed:pulled`."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits

    async def publish(self, author: str, post: str) -> bool:
        """Push `post`, live in `author`'s timeline, to every follower of theirs at its time
        there (the newest creation's), and True; or mark the author read-merged and False at or
        above the threshold, or when the post is not kept. Idempotent: a redelivery pushes the
        same members at the same time."""
        at = await self._redis.zscore(keys.timeline(author), post)
        if at is None:
            return False
        at_ms = int(at)
        if await self._redis.zcard(keys.followers(author)) >= self._limits.celebrity_followers:
            await self._redis.sadd(keys.pulled_authors(), author)
            return False
        entry, cap = member(author, post), self._limits.max_home
        await self._each_follower_chunk(
            author,
            lambda follower: [
                ("ZADD", keys.home(follower), at_ms, entry),
                ("ZREMRANGEBYRANK", keys.home(follower), 0, -cap - 1),
            ],
        )
        return True

    async def retract_post(self, author: str, post: str) -> None:
        """Take a deleted post out of the feeds it was pushed to (reads hide it already)."""
        entry = member(author, post)
        await self._each_follower_chunk(author, lambda follower: [("ZREM", keys.home(follower), entry)])

    async def backfill(self, user: str, author: str) -> None:
        """Push `author`'s newest posts into `user`'s feed (after a follow)."""
        cap = self._limits.max_home
        rows = await self._redis.zrevrange(keys.timeline(author), 0, cap - 1, withscores=True)
        if not rows:
            return
        scored = {member(author, p.decode()): int(at) for p, at in rows}
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.home(user), scored)
            pipe.zremrangebyrank(keys.home(user), 0, -cap - 1)
            await pipe.execute()

    async def drop_author(self, user: str, author: str) -> None:
        """Take `author`'s posts out of `user`'s feed (after an unfollow; reads hide them already)."""
        prefix = (author + "|").encode()
        entries = [m for m in await self._redis.zrange(keys.home(user), 0, -1) if m.startswith(prefix)]
        if entries:
            await self._redis.zrem(keys.home(user), *entries)

    async def _each_follower_chunk(self, author: str, commands_for: Callable[[str], list[Command]]) -> None:
        """Run `commands_for` each follower of `author`, PUSH_CHUNK followers a round trip."""
        before: tuple[int, str] | None = None
        while True:
            got = await ranked.page(self._redis, keys.followers(author), before, PUSH_CHUNK)
            commands: list[Command] = []
            for follower, _ in got.members:
                commands += commands_for(follower)
            for result in await run_commands(self._redis, [], commands) if commands else []:
                if isinstance(result, BaseException):
                    raise result
            if got.next_before is None:
                return
            before = ranked.parse_cursor(got.next_before)

    async def page(self, user: str, before: tuple[int, str] | None, limit: int) -> FeedPage:
        """Up to `limit` posts after `before`: the pushed feed merged with the timelines of the
        read-merged authors the user follows; a post deleted or of an author no longer
        followed is left out (so a page may hold fewer than `limit`: follow `next_before`)."""
        following = {m.decode() for m in await self._redis.zrange(keys.following(user), 0, -1)}
        merged: list[str] = []
        if following:
            flags = await self._redis.smismember(keys.pulled_authors(), sorted(following))
            merged = [a for a, flag in zip(sorted(following), flags, strict=True) if flag]
        sources: list[tuple[str, str]] = [(keys.home(user), "")] + [
            (keys.timeline(a), a + "|") for a in merged
        ]
        candidates: dict[str, int] = {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _ in sources:
                if before is None:
                    pipe.zrevrangebyscore(key, "+inf", "-inf", start=0, num=limit + 1, withscores=True)
                else:  # everything tied at the cursor's time, and `limit` + 1 below it
                    pipe.zrevrangebyscore(key, before[0], before[0], withscores=True)
                    pipe.zrevrangebyscore(
                        key, f"({before[0]}", "-inf", start=0, num=limit + 1, withscores=True
                    )
            replies = await pipe.execute()
        per_source = 1 if before is None else 2
        for n, (_, prefix) in enumerate(sources):
            for reply in replies[n * per_source : (n + 1) * per_source]:
                for raw, score in reply:
                    entry = prefix + raw.decode()
                    if before is None or int(score) < before[0] or entry < before[1]:
                        candidates[entry] = int(score)
        ordered = sorted(candidates.items(), key=lambda c: (c[1], c[0]), reverse=True)
        covered = ordered[:limit]
        items = await self._visible(user, covered, following)
        more = len(ordered) > limit
        last = covered[-1] if covered else None
        return FeedPage(items, f"{last[1]}:{last[0]}" if more and last else None)

    async def _visible(
        self, user: str, entries: Sequence[tuple[str, int]], following: set[str]
    ) -> list[bytes]:
        """The live records of `entries` whose author `user` follows and has not hidden (a mute
        or block either way, or one undone since the post: PreferenceStore.hidden_until), in
        order."""
        wanted = [(*e.partition("|"), at) for e, at in entries]
        until = await PreferenceStore(self._redis).hidden_until(user, {a for a, _, _, _ in wanted})
        shown = [(a, p) for a, _, p, at in wanted if a in following and at > until.get(a, -1)]
        if not shown:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for author, post in shown:
                pipe.hget(keys.post_records(author), post)
            records = await pipe.execute()
        return [r.partition(b"\n")[2] for r in records if r is not None and r.startswith(b"a ")]
