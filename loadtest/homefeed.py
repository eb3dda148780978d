"""The `homefeed` stage (`python -m loadtest celebrity --feed`): a celebrity's posts during a steady
background, and home-feed reads that merge celebrities' timelines.

A private redis-server and one worker process. Two authors share `users` followers: `pushstar`
has exactly `users` of them and `bigstar` one more, and the threshold is set between them, so
`pushstar`'s posts are pushed at write time (chunked, in resumable slices) and `bigstar`'s are
read-merged. The background is likes to `clients` owners at `rate` events/s, appended by the
API's own script (no HTTP); its latency is from acceptance to the owner's change arriving on
pub/sub (the channel a gateway listens on). Three phases of `duration_s` each: background alone,
with `pushstar` posting `events` times, with `bigstar` posting as often (after a warm-up phase
like the first, reported but compared with nothing). A pushed post's time to
its last follower is the latest arrival on the followers' channels; a read-merged post's time to
its first follower is the first feed read (feeds.home.HomeFeeds.page, behind GET /v1/me/feed)
that shows it. Last, `clients` readers each following `fanout` read-merged celebrities (20 posts
each) read their first page: the latency of a read that merges that many timelines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from feeds import changelog
from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from notifier.api.append import EventLog
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import IngestSettings, Settings
from schemas import keys
from schemas.events import Event, Follow, Like, PostCreated

from .metrics import consumer_groups, new_histogram, summary_ms
from .progress import Progress
from .report import fmt
from .scenarios import Scenario
from .stack import LocalStack, private_stack

SERVICE: Final = "loadtest"
CHUNK: Final = 1_000  # events per append
TICK_S: Final = 0.01  # the background is appended this often, rate x TICK_S at a time
SUBSCRIBE_CHUNK: Final = 1_000
CELEB_POSTS: Final = 20  # posts of each read-merged celebrity in the read benchmark
READ_PAGE: Final = 20


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def run(scenario: Scenario, *, extra_env: dict[str, str], progress: bool = True) -> dict[str, Any]:
    s = scenario
    env = {"NOTIFIER_FEEDS_CELEBRITY_FOLLOWERS": str(s.users + 1), **extra_env}
    limits = Settings.from_env(env).feeds
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with private_stack("notifier", partitions=s.partitions, extra_env=env) as stack:
        measured = anyio.run(_measure, s, stack, limits, Progress(enabled=progress))
    return {"stage": "homefeed", "scenario": asdict(s), "started_at": started, "stack_env": env, **measured}


async def _measure(s: Scenario, stack: LocalStack, limits: FeedLimits, progress: Progress) -> dict[str, Any]:
    redis = Redis.from_url(stack.redis_url, socket_timeout=30)
    append = Appender(redis, s.partitions)
    fans = [f"fan{i}" for i in range(s.users + 1)]
    owners = [f"own{i}" for i in range(s.clients)]
    try:
        stack.spawn_worker()
        base = int(time.time() * 1000) - 3_600_000
        follows: list[Event] = [
            Follow(id=f"f-{star}-{f}", actor=f, occurred_at=_at(base + i), user=star)
            for star, followers in (("pushstar", fans[:-1]), ("bigstar", fans))
            for i, f in enumerate(followers)
        ]
        await append(follows)
        await _settle(redis, s, append, progress, "following")
        pubsub = redis.pubsub()
        channels = [keys.user_channel(u) for u in owners + fans[:-1]]
        for start in range(0, len(channels), SUBSCRIBE_CHUNK):
            await pubsub.subscribe(*channels[start : start + SUBSCRIBE_CHUNK])
        phases = {}
        for name, star in (
            ("warm-up", None),
            ("background", None),
            ("pushed", "pushstar"),
            ("merged", "bigstar"),
        ):
            progress.line(f"homefeed: phase {name}")
            phases[name] = await _phase(s, redis, append, pubsub, owners, star, limits)
            await _settle(redis, s, append, progress, name)
        await pubsub.aclose()
        progress.line("homefeed: feed reads")
        reads = await _reads(redis, s)
        progress.done()
    finally:
        await redis.aclose()
    return {"phases": phases, "reads": reads, "threshold": s.users + 1}


class Appender:
    """The API's own append (no HTTP), counting what it appended."""

    def __init__(self, redis: Redis, partitions: int) -> None:
        self._log = EventLog(redis, IngestSettings(partitions=partitions))
        self.appended = 0

    async def __call__(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), CHUNK):
            appended = await self._log.append(events[start : start + CHUNK], SERVICE)
            if any(a.status != "accepted" for a in appended):
                raise RuntimeError(f"appending gave {sorted({a.status for a in appended})}")
            self.appended += len(appended)


async def _settle(redis: Redis, s: Scenario, append: Appender, progress: Progress, what: str) -> None:
    """Until the worker has read and applied everything appended (lag and pending 0)."""
    with anyio.fail_after(s.drain_s):
        while True:
            groups = await consumer_groups(redis, s.partitions)
            if groups.read >= append.appended and groups.lag == 0 and groups.pending == 0:
                return
            progress.line(f"homefeed: {what}: backlog={groups.lag}+{groups.pending}")
            await anyio.sleep(0.1)


async def _phase(
    s: Scenario,
    redis: Redis,
    append: Appender,
    pubsub: PubSub,
    owners: list[str],
    star: str | None,
    limits: FeedLimits,
) -> dict[str, Any]:
    background = new_histogram()
    posted: dict[str, int] = {}  # post id → ms just before its append
    reached: dict[str, list[int]] = {}  # post id → arrival ms on each follower's channel
    first_read: dict[str, int] = {}
    tag = f"{star or 'bg'}{int(time.time())}"
    end = time.monotonic() + s.duration_s

    async def produce() -> None:
        n, due = 0, time.monotonic()
        while time.monotonic() < end:
            owed = int((time.monotonic() - due) * s.rate) + 1
            likes: list[Event] = []
            now_ms = int(time.time() * 1000)
            for _ in range(owed):
                owner = owners[n % len(owners)]
                likes.append(
                    Like(
                        id=f"{tag}-l{n}",
                        actor=f"a{n}",
                        occurred_at=_at(now_ms),
                        post=f"{owner}.p",
                        owner=owner,
                    )
                )
                n += 1
            await append(likes)
            due += owed / s.rate
            await anyio.sleep(max(0.0, due - time.monotonic()))

    async def celebrate() -> None:
        assert star is not None
        gap = s.duration_s / (s.events + 1)
        for i in range(s.events):
            await anyio.sleep(gap)
            post = f"{tag}-p{i}"
            posted[post] = now_ms = int(time.time() * 1000)
            await append([PostCreated(id=post, actor=star, occurred_at=_at(now_ms), post=post)])
            if star == "bigstar":
                tg.start_soon(watch_read, post)

    async def watch_read(post: str) -> None:
        feeds = HomeFeeds(redis, limits)
        with anyio.move_on_after(s.drain_s):
            while True:
                page = await feeds.page("fan0", None, 1)
                if page.items and orjson.loads(page.items[0])["id"] == post:
                    first_read[post] = int(time.time() * 1000) - posted[post]
                    check_done()
                    return
                await anyio.sleep(0.002)

    async def receive() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            now_ms = int(time.time() * 1000)
            live = changelog.published(message["data"].decode())
            if live.feed:
                post = orjson.loads(live.payload)["post"]["id"]
                reached.setdefault(post, []).append(now_ms)
                check_done()
            elif live.accepted_ms:
                background.record_value(max(1, (now_ms - int(live.accepted_ms)) * 1000))

    finished = anyio.Event()

    def check_done() -> None:
        if len(posted) < s.events:
            return
        if star == "bigstar" and len(first_read) == len(posted):
            finished.set()
        if star == "pushstar" and all(len(reached.get(p, [])) >= s.users for p in posted):
            finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(receive)
        if star is not None:
            tg.start_soon(celebrate)
        await produce()
        if star is not None:
            with anyio.move_on_after(s.drain_s):  # the pushes and the reads still under way
                await finished.wait()
        tg.cancel_scope.cancel()
    out: dict[str, Any] = {"background_ms": summary_ms(background), "posts": len(posted)}
    if star == "pushstar":
        out["last_follower_ms"] = [max(reached.get(p, [0])) - at for p, at in posted.items()]
        out["first_follower_ms"] = [min(reached.get(p, [0])) - at for p, at in posted.items()]
        out["followers_reached"] = [len(reached.get(p, [])) for p in posted]
    if star == "bigstar":
        out["first_read_ms"] = [first_read.get(p) for p in posted]
    return out


async def _reads(redis: Redis, s: Scenario) -> dict[str, Any]:
    """`clients` readers each following `fanout` read-merged celebrities of CELEB_POSTS posts
    (applied in this process through the fan-out's own apply, with a threshold of 1 so they are
    read-merged), then every reader's first page, read in turn `reads_per_reader` times."""
    limits = FeedLimits(celebrity_followers=1)
    readers = [f"reader{i}" for i in range(s.clients)]
    celebs = [f"celeb{i}" for i in range(s.fanout)]
    base = int(time.time() * 1000) - 600_000
    events: list[Event] = [
        Follow(id=f"rf-{r}-{c}", actor=r, occurred_at=_at(base), user=c) for r in readers for c in celebs
    ]
    events += [
        PostCreated(id=f"rp-{c}-{n}", actor=c, occurred_at=_at(base + 1 + n * 97 + i), post=f"{c}-{n}")
        for i, c in enumerate(celebs)
        for n in range(CELEB_POSTS)
    ]
    inbox = Inbox(redis, limits)
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        logged = [LoggedEvent(f"{start + i}-0".encode(), e, SERVICE, base) for i, e in enumerate(chunk)]
        failed = await apply_events(inbox, limits, logged)
        if failed:
            raise RuntimeError(f"setting up the readers failed: {list(failed.values())[:3]}")
    feeds = HomeFeeds(redis, limits)
    latency = new_histogram()
    rounds = max(1, 1_000 // max(1, len(readers)))
    shown = 0
    for _ in range(rounds):
        for reader in readers:
            started = time.perf_counter_ns()
            page = await feeds.page(reader, None, READ_PAGE)
            latency.record_value(max(1, (time.perf_counter_ns() - started) // 1000))
            shown = len(page.items)
    return {
        "readers": len(readers),
        "merged_per_read": len(celebs),
        "page": READ_PAGE,
        "shown": shown,
        "latency_ms": summary_ms(latency),
    }


def passed(result: dict[str, Any]) -> bool:
    pushed, merged = result["phases"]["pushed"], result["phases"]["merged"]
    users = result["scenario"]["users"]
    return all(n >= users for n in pushed["followers_reached"]) and None not in merged["first_read_ms"]


def summary(result: dict[str, Any]) -> str:
    p = result["phases"]
    return (
        f"homefeed: background p99 alone={p['background']['background_ms'].get('p99')}ms "
        f"pushed={p['pushed']['background_ms'].get('p99')}ms "
        f"merged={p['merged']['background_ms'].get('p99')}ms; "
        f"last pushed follower {p['pushed'].get('last_follower_ms')}ms; first read-merged "
        f"{p['merged'].get('first_read_ms')}ms; feed read p50={result['reads']['latency_ms'].get('p50')}ms "
        f"p99={result['reads']['latency_ms'].get('p99')}ms"
    )


def markdown(r: dict[str, Any]) -> str:
    s, p, reads = r["scenario"], r["phases"], r["reads"]
    alone = p["background"]["background_ms"].get("p99") or 0

    def ratio(phase: str) -> str:
        with_star = p[phase]["background_ms"].get("p99")
        return f"{with_star / alone:.2f}x" if alone and with_star else "-"

    lines = [
        f"# loadtest `celebrity --feed`: a celebrity with {fmt(s['users'])} followers ({r['started_at']})",
        "",
        s["description"],
        "",
        f"Knobs: users={s['users']} clients={s['clients']} rate={s['rate']} duration_s={s['duration_s']} "
        f"events={s['events']} fanout={s['fanout']} partitions={s['partitions']} "
        f"threshold={r['threshold']}" + "".join(f" {k}={v}" for k, v in r["stack_env"].items()),
        "",
        f"## Result: {'PASS' if passed(r) else 'FAIL'}",
        "",
        "| phase | background p50 ms | p99 ms | p99 vs alone | celebrity posts |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("warm-up", "background", "pushed", "merged"):
        b = p[name]["background_ms"]
        lines.append(
            f"| {name} | {fmt(b.get('p50'))} | {fmt(b.get('p99'))} | {ratio(name)} | {p[name]['posts']} |"
        )
    lines += [
        "",
        f"Pushed (`pushstar`, {fmt(s['users'])} followers): time from the append to the last follower's "
        f"channel, per post: {p['pushed']['last_follower_ms']} ms (first follower: "
        f"{p['pushed']['first_follower_ms']} ms; followers reached {p['pushed']['followers_reached']}).",
        "",
        f"Read-merged (`bigstar`): time from the append to the first feed read showing it: "
        f"{p['merged']['first_read_ms']} ms.",
        "",
        f"Feed reads: {reads['readers']} readers each merging {reads['merged_per_read']} celebrities' "
        f"timelines into a page of {reads['page']} (showing {reads['shown']}): p50 "
        f"{fmt(reads['latency_ms'].get('p50'))} ms, p99 {fmt(reads['latency_ms'].get('p99'))} ms over "
        f"{reads['latency_ms'].get('count')} reads, one at a time.",
    ]
    return "\n".join(lines) + "\n"
