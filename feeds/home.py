"""Home feeds: the posts of the accounts a user follows, newest first, by hybrid fan-out.

An author with fewer than `celebrity_followers` followers when a post is applied has it pushed
into each follower's `keys.home` (`push_chunk` followers a round trip, `push_slice` chunks per
call: a bigger fan-out stores its position in `keys.feed_pushes` and the fan-out calls again,
so no call holds a worker long and a crash resumes where it stopped); from that many on, the
author joins `keys.pulled_authors` and their timeline is merged into their followers' feeds at
read time. The choice is made per post, so crossing the threshold either way loses nothing: an
author who ever published a read-merged post stays merged (their pushed posts and merged ones
are the same members, shown once).

Every change to a pushed feed is logged in the follower's change log and published to their
sockets (lua/feed_push.lua), once: a change that finds the feed already so logs nothing.

What is shown is decided at read: a post shows while it is live in its author's timeline and
its author is followed (and not muted, nor blocked either way, nor was when the post was
made: feeds/preferences.py). So a deletion or an unfollow
hides at once whatever order it is applied in with its counterpart; the write-time clean-up
(`retract_post`, `drop_author`) only frees room. A follow back-fills the author's recent posts,
so a follow applied after the posts it should show does not miss them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from schemas import keys, protocol
from schemas.layouts import OP_FEED_DROP, OP_FEED_PUSH

from . import ranked
from .cluster import calls_of, shard_of, slot_of
from .limits import FeedLimits
from .preferences import PreferenceStore
from .scripts import Arg, Command, head, run_checked, run_commands, scripts_for, user_keys
from .timeline import live_post, live_time_ms

# Users per feed_push.lua call: they share the call's fixed cost (the script's prologue: most of
# a push when each follower had a call of its own), and a call holds Redis for at most this many
# users' changes (see the README's celebrity benchmark for the measurement behind it).
USERS_PER_CALL: Final = 100

Post = tuple[str, str]  # (author, post)
# one change of a feed_push.lua call: op (p push | q take out), member, time ms ('' for q), payload
FeedChange = tuple[str, str, int | str, bytes]
Change = tuple[str, Sequence[FeedChange]]  # a user and changes of their feed, for one call
Follow = tuple[str, str]  # (user, author): the user follows, or no longer follows, the author


def _per_user(changes: Iterable[tuple[str, Sequence[FeedChange]]]) -> list[Change]:
    """Each user's changes in one entry (a user may follow several authors in one batch)."""
    merged: dict[str, list[FeedChange]] = {}
    for user, some in changes:
        merged.setdefault(user, []).extend(some)
    return list(merged.items())


def member(author: str, post: str) -> str:
    """A home feed's member for `post` (ids never hold `|`: schemas.events.ID_PATTERN)."""
    return f"{author}|{post}"


@dataclass(frozen=True, slots=True)
class FeedPage:
    items: list[bytes]  # post JSON records (timeline.py), newest first
    next_before: str | None  # cursor of the next page (ranked.parse_cursor), None on the last


class HomeFeeds:
    """The only code that reads or writes `hf:`, `fp:` and `feed:pulled:`."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._scripts = scripts_for(redis)

    async def publish(self, author: str, post: str, tag: str = "") -> bool:
        """Push `post`, live in `author`'s timeline, to their followers at its time there (the
        newest creation's), at most `push_slice` chunks of them; or mark the author read-merged
        at or above the threshold. True once done (or nothing to push: read-merged, deleted, not
        kept); False when followers are left, their position stored: call again. Idempotent:
        a redelivery pushes the same members at the same time, and logs nothing twice."""
        register = await self._redis.hget(keys.post_records(author), post)
        at_ms, record = live_time_ms(register), live_post(register)
        if at_ms is None or record is None:
            await self._redis.hdel(keys.feed_pushes(author), OP_FEED_PUSH + post)
            return True
        started = await self._redis.hexists(keys.feed_pushes(author), OP_FEED_PUSH + post)
        if not started:
            if await self._redis.zcard(keys.followers(author)) >= self._limits.celebrity_followers:
                await self._redis.sadd(keys.pulled_authors(author), author)
                return True
        change: FeedChange = (OP_FEED_PUSH, member(author, post), at_ms, protocol.feed_added(record))
        return await self._fan_out(author, OP_FEED_PUSH + post, change, tag, post)

    async def retract_post(self, author: str, post: str) -> bool:
        """Take a deleted post out of the feeds it was pushed to (reads hide it already), in
        slices like `publish`: True once done, False when followers are left."""
        await self._redis.hdel(keys.feed_pushes(author), OP_FEED_PUSH + post)  # a push in progress stops
        change: FeedChange = (OP_FEED_DROP, member(author, post), "", protocol.feed_removed(author, post))
        return await self._fan_out(author, OP_FEED_DROP + post, change)

    async def backfill(self, follows: Sequence[Follow]) -> None:
        """Push each followed author's newest posts into the follower's feed (after follows):
        one round trip reads every author's timeline, one more the posts of those with any,
        one more writes the feeds."""
        if not follows:
            return
        authors = sorted({author for _, author in follows})
        timelines = await run_checked(
            self._redis, [("ZREVRANGE", keys.timeline(a), 0, self._limits.max_home - 1) for a in authors]
        )
        posts = {a: [p.decode() for p in got] for a, got in zip(authors, timelines, strict=True) if got}
        if not posts:
            return
        registers = await run_checked(
            self._redis, [("HMGET", keys.post_records(a), *ps) for a, ps in posts.items()]
        )
        newest: dict[str, list[FeedChange]] = {}  # author → changes, oldest first: newest on top
        for (author, ids), records in zip(posts.items(), registers, strict=True):
            changes: list[FeedChange] = []
            for post, register in zip(ids, records, strict=True):
                at_ms, record = live_time_ms(register), live_post(register)
                if at_ms is not None and record is not None:
                    changes.append((OP_FEED_PUSH, member(author, post), at_ms, protocol.feed_added(record)))
            newest[author] = changes[::-1]
        await self._change(_per_user((user, newest.get(author, [])) for user, author in follows))

    async def drop_authors(self, unfollows: Sequence[Follow]) -> None:
        """Take each author's posts out of the user's feed (after an unfollow, a mute or a
        block; reads hide them already): one round trip reads the feeds, one more writes them."""
        if not unfollows:
            return
        users = sorted({user for user, _ in unfollows})
        feeds = dict(
            zip(
                users,
                await run_checked(self._redis, [("ZRANGE", keys.home(u), 0, -1) for u in users]),
                strict=True,
            )
        )
        drops: list[tuple[str, list[FeedChange]]] = []
        for user, author in unfollows:
            prefix = (author + "|").encode()
            entries = [m.decode() for m in feeds[user] if m.startswith(prefix)]
            drops.append(
                (
                    user,
                    [
                        (OP_FEED_DROP, e, "", protocol.feed_removed(author, e.partition("|")[2]))
                        for e in entries
                    ],
                )
            )
        await self._change(_per_user(drops))

    async def _change(self, changes: Sequence[Change], tag: str = "", post: Post | None = None) -> bool:
        """Apply each user's changes: the users of one master (a single Redis: all) share a call,
        USERS_PER_CALL at most, all calls in one round trip. With `post` ((author, post): the
        post the changes push), a call whose slot is the author's master checks it is still
        live: False if it was deleted (nothing of it pushed there)."""
        changes = [(user, c) for user, c in changes if c]
        every = range(len(changes))
        results = await self._calls(changes, tag, post, every, shard_of)
        failed = [i for i in every if isinstance(results[i], BaseException)]
        if failed and self._scripts.sharded:  # a slot moved: calls of one slot learn where
            for i, result in zip(failed, await self._calls(changes, tag, post, failed, slot_of), strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return all(result != -1 for result in results)

    async def _calls(
        self,
        changes: Sequence[Change],
        tag: str,
        post: Post | None,
        indexes: Sequence[int],
        group: Callable[[Redis, str], str],
    ) -> list[Any]:
        """The result of the call that carried each of changes[indexes] (users grouped by `group`)."""
        records = keys.post_records(post[0]) if post else ""
        calls = calls_of(indexes, lambda i: group(self._redis, keys.home(changes[i][0])), USERS_PER_CALL)
        commands: list[Command] = []
        for name, call in calls:
            checks = bool(records) and group(self._redis, records) == name
            call_keys: list[str] = []
            args: list[Arg] = [
                *head(None, self._limits),
                self._limits.max_home,
                tag,
                post[1] if post and checks else "",
            ]
            for i in call:
                user, user_changes = changes[i]
                call_keys += [*user_keys(user), keys.home(user), keys.mutes(user), keys.blocks(user)]
                call_keys.append(keys.hide_marks(user))
                args += (keys.user_channel(user), len(user_changes))
                for change in user_changes:
                    args += change
            commands.append(self._scripts.feed_command([*call_keys, records] if checks else call_keys, args))
        replies = await run_commands(self._redis, [self._scripts.feed], commands)
        results: dict[int, Any] = {
            i: reply for (_, call), reply in zip(calls, replies, strict=True) for i in call
        }
        return [results[i] for i in indexes]

    async def _fan_out(
        self, author: str, field: str, change: FeedChange, tag: str = "", post: str = ""
    ) -> bool:
        """Apply `change` to each follower of `author`, `push_chunk` followers a round trip,
        from the position stored under `field` of `keys.feed_pushes`, for at most `push_slice`
        chunks; store the position reached (True: done, and the position deleted; also once
        `post` is found deleted)."""
        progress = keys.feed_pushes(author)
        stored = await self._redis.hget(progress, field)
        before = ranked.parse_cursor(stored.decode()) if stored else None
        for _ in range(self._limits.push_slice):
            got = await ranked.page(self._redis, keys.followers(author), before, self._limits.push_chunk)
            live = await self._change(
                [(f, [change]) for f, _ in got.members], tag, (author, post) if post else None
            )
            if got.next_before is None or not live:
                await self._redis.hdel(progress, field)
                return True
            before = ranked.parse_cursor(got.next_before)
        await self._redis.hset(progress, field, f"{before[0]}:{before[1]}" if before else "")
        return False

    async def page(self, user: str, before: tuple[int, str] | None, limit: int) -> FeedPage:
        """Up to `limit` posts after `before`: the pushed feed merged with the timelines of the
        read-merged authors the user follows; a post deleted or of an author no longer
        followed is left out (so a page may hold fewer than `limit`: follow `next_before`)."""
        following = {m.decode() for m in await self._redis.zrange(keys.following(user), 0, -1)}
        merged = await self._pulled(sorted(following))
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

    async def _pulled(self, authors: Sequence[str]) -> list[str]:
        """Which of `authors` are read-merged: one SMISMEMBER per shard of `keys.pulled_authors`."""
        by_shard: dict[str, list[str]] = {}
        for author in authors:
            by_shard.setdefault(keys.pulled_authors(author), []).append(author)
        if not by_shard:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, some in by_shard.items():
                pipe.smismember(key, some)
            replies = await pipe.execute()
        return sorted(
            a
            for some, flags in zip(by_shard.values(), replies, strict=True)
            for a, f in zip(some, flags, strict=True)
            if f
        )

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
        return [p for p in map(live_post, records) if p is not None]
