"""The `fanout` stage: one worker draining a preloaded event log, nothing else running.

The events (likes of a few posts per owner, follows and comments, one recipient each, so
aggregation has work to do) are appended by the API's own EventLog.append (the same script,
entry fields and partitioning as a POST, without HTTP) before any worker exists. Then one
worker process starts, and the consumer groups are sampled until every partition's lag and
pending are 0: applied events/s runs from the worker's first read to that moment. Finally the
inboxes are checked against what feeds.items.plan says they must hold."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import orjson
from redis.asyncio import Redis

from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from notifier.api.append import EventLog
from notifier.runtime.settings import IngestSettings, Settings
from schemas.events import Comment, Event, Follow, Like, type_name

from .graph import user_id
from .metrics import (
    CommandStats,
    GroupState,
    ProcessMeter,
    command_stats,
    commands_per_event,
    consumer_groups,
    process_summary,
)
from .progress import Progress
from .report import command_rows, fmt, resource_rows
from .scenarios import Scenario
from .stack import LocalStack, private_stack

SERVICE: Final = "loadtest"
PRELOAD_CHUNK: Final = 1_000  # events per append pipeline
SAMPLE_S: Final = 0.1  # the drain's start and end are known to this much
ROW_S: Final = 1.0
EVENTS_PER_USER: Final = 20  # default inbox size: a few groups each, well under the inbox cap
POSTS_PER_OWNER: Final = 3
KINDS: Final = ("like", "follow", "comment")
WEIGHTS: Final = (0.6, 0.25, 0.15)
CHECK_CONCURRENCY: Final = 64  # inboxes read at once
PAGE: Final = 100  # groups per inbox page (the REST maximum)


def users_for(scenario: Scenario) -> int:
    return scenario.users or max(2, scenario.events // EVENTS_PER_USER)


def workload(n: int, users: int, seed: int, run_id: str, end_ms: int) -> list[Event]:
    """`n` seeded events to `users` owners, one ms apart and ending at `end_ms`; actors are
    never users (nobody is notified of their own action) and each acts rarely (moderation's
    velocity rule stays quiet)."""
    rng = random.Random(seed)
    actors = max(1_000, n // 2)
    out: list[Event] = []
    for i, kind in enumerate(rng.choices(KINDS, WEIGHTS, k=n)):
        owner = user_id(rng.randrange(users))
        base: dict[str, Any] = {
            "id": f"{run_id}.{i}",
            "actor": f"a{rng.randrange(actors)}",
            "occurred_at": datetime.fromtimestamp((end_ms - n + i) / 1000, UTC),
        }
        post = f"{owner}.p{rng.randrange(POSTS_PER_OWNER)}"
        if kind == "like":
            out.append(Like(**base, post=post, owner=owner))
        elif kind == "follow":
            out.append(Follow(**base, user=owner))
        else:
            out.append(Comment(**base, post=post, owner=owner, comment=base["id"]))
    return out


def expected_groups(events: Sequence[Event], limits: FeedLimits) -> dict[str, dict[str, set[str]]]:
    """user → group id → the active items (one per actor) the group must count."""
    out: dict[str, dict[str, set[str]]] = {}
    for event in events:
        for op in plan(event, limits):
            if op.state == "a":
                out.setdefault(op.user, {}).setdefault(op.group_id, set()).add(op.item)
    return out


@dataclass(slots=True)
class Drain:
    """What sampling the consumer groups saw while the worker ran."""

    spawned_ns: int = 0  # when the worker process was started (the timeline's zero)
    start_ns: int = 0  # the last sample before the worker's first read
    end_ns: int = 0  # the first sample with nothing left (0: the budget ran out)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    final: GroupState | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def busy_rows(self) -> list[dict[str, Any]]:
        """The timeline rows after the worker's start-up (imports, model loading)."""
        start_t = (self.start_ns - self.spawned_ns) / 1e9
        return [row for row in self.timeline if row["t"] > start_t]


def run(scenario: Scenario, *, extra_env: dict[str, str], progress: bool = True) -> dict[str, Any]:
    s = scenario
    limits = Settings.from_env(extra_env).feeds  # as the worker reads them
    users = users_for(s)
    events = workload(s.events, users, s.seed, "lt" + secrets.token_hex(4), int(time.time() * 1000))
    expected = expected_groups(events, limits)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with private_stack(
        "notifier", partitions=s.partitions, extra_env=extra_env, redis_cpus=s.redis_cpus
    ) as stack:
        measured = anyio.run(
            _measure,
            s,
            stack,
            events,
            expected,
            limits,
            Progress(enabled=progress),
            backend_options={"use_uvloop": True},
        )
    preload_s, drain, inbox, processes, commands = measured
    n = len(events)
    notes = []
    if not drain.end_ns:
        notes.append(f"the backlog did not drain within {s.drain_s}s")
    crowded = sum(len(groups) > limits.max_groups for groups in expected.values())
    if crowded:
        notes.append(f"{crowded} inboxes get more than {limits.max_groups} groups: the cap drops some")
    busy = [row["applied_eps"] for row in drain.busy_rows()[1:-1]]  # whole seconds of work
    return {
        "stage": "fanout",
        "scenario": asdict(s),
        "started_at": started,
        "stack_env": extra_env,
        "workload": {
            "events": n,
            "users": users,
            "by_type": dict(Counter(type_name(e) for e in events)),
            "groups_expected": sum(len(groups) for groups in expected.values()),
            "preload_s": round(preload_s, 2),
            "preload_eps": round(n / preload_s, 1),
        },
        "throughput": {
            "applied_eps": round(n / drain.seconds, 1) if drain.end_ns else None,
            "drain_s": round(drain.seconds, 2) if drain.end_ns else None,
            "peak_second_eps": max(busy, default=None),
        },
        "fanout": {
            "final_lag": drain.final.lag if drain.final else None,
            "final_pending": drain.final.pending if drain.final else None,
            "read": drain.final.read if drain.final else None,
        },
        "processes": processes,
        # CPU per applied event over the drain: what a core's worth of each process buys
        "cpu_us_per_event": {
            role: round(p["cpu_s"] * 1e6 / n, 1) if p.get("cpu_s") is not None and drain.end_ns else None
            for role, p in processes.items()
        },
        "inbox": inbox,
        "redis_commands": commands_per_event(*commands, n),  # INFO commandstats over the drain
        "timeline": drain.timeline,
        "notes": notes,
    }


async def _measure(
    s: Scenario,
    stack: LocalStack,
    events: list[Event],
    expected: dict[str, dict[str, set[str]]],
    limits: FeedLimits,
    progress: Progress,
) -> tuple[float, Drain, dict[str, Any], dict[str, Any], tuple[CommandStats, CommandStats]]:
    redis = Redis.from_url(stack.redis_url, socket_timeout=10)
    try:
        preload_s = await _preload(redis, events, s.partitions, progress)
        commands_before = await command_stats(redis)
        meter = ProcessMeter()
        stack.spawn_worker(s.worker_cpus)
        for role in ("worker", "redis"):
            for pid in stack.procs.pids()[role]:
                meter.watch(role, pid)
        drain = await _drain(redis, stack, len(events), meter, s.drain_s, progress)
        commands = commands_before, await command_stats(redis)
        progress.done()
        cpu = {r: round(drain.cpu_end[r] - drain.cpu_start.get(r, 0.0), 2) for r in drain.cpu_end}
        processes = process_summary(meter, drain.busy_rows(), cpu, drain.seconds)
        inbox = await check_inboxes(redis, limits, expected)
    finally:
        await redis.aclose()
    return preload_s, drain, inbox, processes, commands


async def _preload(redis: Redis, events: list[Event], partitions: int, progress: Progress) -> float:
    log = EventLog(redis, IngestSettings(partitions=partitions))
    started = time.monotonic()
    statuses: Counter[str] = Counter()
    for start in range(0, len(events), PRELOAD_CHUNK):
        appended = await log.append(events[start : start + PRELOAD_CHUNK], SERVICE)
        statuses.update(a.status for a in appended)
        progress.line(f"fanout: preloading {start + PRELOAD_CHUNK}/{len(events)} events")
    if statuses["accepted"] != len(events):
        raise RuntimeError(f"preloading the event log gave {dict(statuses)}")
    return time.monotonic() - started


async def _drain(
    redis: Redis, stack: LocalStack, n: int, meter: ProcessMeter, budget_s: float, progress: Progress
) -> Drain:
    """Sample until the group has read all `n` entries and nothing is left unread or pending."""
    drain = Drain(spawned_ns=time.time_ns(), start_ns=time.time_ns())
    last_row_ns, last_read = drain.spawned_ns, 0
    deadline = time.monotonic() + budget_s
    meter.sample()
    while time.monotonic() < deadline:
        stack.procs.check_alive()
        groups = await consumer_groups(redis, stack.partitions)
        now, cpu = time.time_ns(), meter.cpu_seconds()
        if groups.read == 0:
            drain.start_ns, drain.cpu_start = now, cpu
        done = groups.read >= n and groups.lag == 0 and groups.pending == 0
        if done or now - last_row_ns >= ROW_S * 1e9:
            row = {
                "t": round((now - drain.spawned_ns) / 1e9, 2),
                "applied_eps": round((groups.read - last_read) / ((now - last_row_ns) / 1e9), 1),
                "lag": groups.lag,
                "pending": groups.pending,
                "processes": meter.sample(),
            }
            drain.timeline.append(row)
            last_row_ns, last_read = now, groups.read
            progress.line(
                f"fanout: t={row['t']:5.1f}s read={groups.read}/{n} applied={row['applied_eps']:.0f}/s "
                f"backlog={groups.lag}+{groups.pending}"
            )
        drain.final = groups
        if done:
            drain.end_ns, drain.cpu_end = now, cpu
            return drain
        await anyio.sleep(SAMPLE_S)
    drain.cpu_end = meter.cpu_seconds()
    return drain


async def check_inboxes(
    redis: Redis, limits: FeedLimits, expected: dict[str, dict[str, set[str]]]
) -> dict[str, Any]:
    """Every inbox holds exactly the expected groups, each counting the expected actors. Read
    the way clients read them (feeds.inbox.Inbox.page, behind GET /v1/me/notifications), so the
    check holds whatever the storage layout."""
    inbox = Inbox(redis, limits)
    found = missing = unexpected = miscounted = 0
    examples: list[str] = []
    users = sorted(expected)
    for start in range(0, len(users), CHECK_CONCURRENCY):
        chunk = users[start : start + CHECK_CONCURRENCY]
        pages = await asyncio.gather(*(_groups(inbox, user) for user in chunk))
        for user, have in zip(chunk, pages, strict=True):
            want = expected[user]
            found += len(have)
            missing += len(want.keys() - have.keys())
            unexpected += len(have.keys() - want.keys())
            wrong = sorted(gid for gid, items in want.items() if gid in have and have[gid] != len(items))
            miscounted += len(wrong)
            if (wrong or want.keys() != have.keys()) and len(examples) < 10:
                lacking, extra = sorted(want.keys() - have.keys())[:3], sorted(have.keys() - want.keys())[:3]
                examples.append(f"{user}: missing {lacking}, extra {extra}, miscounted {wrong[:3]}")
    return {
        "inboxes": len(users),
        "groups_expected": sum(len(groups) for groups in expected.values()),
        "groups_found": found,
        "missing": missing,
        "unexpected": unexpected,
        "miscounted": miscounted,
        "examples": examples,
    }


async def _groups(inbox: Inbox, user: str) -> dict[str, int]:
    """Group id → actor count of every group in `user`'s inbox."""
    out: dict[str, int] = {}
    before: str | None = None
    while True:
        page = await inbox.page(user, before, PAGE)
        for raw in page.groups:
            group = orjson.loads(raw)
            out[group["id"]] = int(group["count"])
        before = page.next_before
        if before is None:
            return out


def passed(result: dict[str, Any]) -> bool:
    inbox = result["inbox"]
    drained = result["throughput"]["applied_eps"] is not None
    return drained and inbox["missing"] == inbox["unexpected"] == inbox["miscounted"] == 0


def summary(result: dict[str, Any]) -> str:
    t, inbox, procs = result["throughput"], result["inbox"], result["processes"]
    per_event = result["cpu_us_per_event"]
    cpu = " ".join(
        f"{role} cpu={p.get('cpu_pct')}% ({per_event[role]} us/event)" for role, p in procs.items()
    )
    return (
        f"fanout: applied={t['applied_eps']}/s ({result['workload']['events']} events in {t['drain_s']}s) "
        f"{cpu} "
        f"groups {inbox['groups_found']}/{inbox['groups_expected']} missing={inbox['missing']} "
        f"unexpected={inbox['unexpected']} miscounted={inbox['miscounted']}"
    )


def markdown(r: dict[str, Any]) -> str:
    s, w, t, f, inbox = r["scenario"], r["workload"], r["throughput"], r["fanout"], r["inbox"]
    lines = [
        f"# loadtest `fanout`: one worker, {fmt(w['events'])} preloaded events ({r['started_at']})",
        "",
        s["description"],
        "",
        f"Knobs: events={w['events']} users={w['users']} partitions={s['partitions']} seed={s['seed']}"
        + "".join(f" {k}={v}" for k, v in r["stack_env"].items()),
        "",
        f"Pinned (taskset -c): redis on {s.get('redis_cpus') or 'any CPU'}, worker on "
        f"{s.get('worker_cpus') or 'any CPU'}; this process (preload, then sampling) unpinned.",
        "",
        f"## Result: {'PASS' if passed(r) else 'FAIL'}",
        "",
        f"**applied {fmt(t['applied_eps'])} events/s** ({fmt(w['events'])} events, one recipient each, "
        f"in {fmt(t['drain_s'])} s from the worker's first read until every partition's lag and pending "
        f"were 0; best whole second {fmt(t['peak_second_eps'])}). Final lag {f['final_lag']}, pending "
        f"{f['final_pending']}, read {fmt(f['read'])}.",
        "",
        f"Workload: {w['by_type']} to {fmt(w['users'])} users, {fmt(w['groups_expected'])} groups "
        f"expected (about {w['events'] / max(1, w['groups_expected']):.1f} events per group); preloaded "
        f"at {fmt(w['preload_eps'])} events/s by the API's append script (no HTTP).",
        "",
        f"Inboxes: {fmt(inbox['groups_found'])} groups found of {fmt(inbox['groups_expected'])} expected in "
        f"{fmt(inbox['inboxes'])} inboxes; missing {inbox['missing']}, unexpected {inbox['unexpected']}, "
        f"wrong actor count {inbox['miscounted']}"
        + (f" (e.g. {'; '.join(inbox['examples'])})" if inbox["examples"] else "")
        + ".",
        "",
        "## Resources (during the drain; cpu % of one core)",
        "",
        *resource_rows(r["processes"]),
        "",
        "CPU per applied event: "
        + ", ".join(f"{role} {fmt(us)} µs" for role, us in r["cpu_us_per_event"].items())
        + ".",
        "",
        *command_rows(r.get("redis_commands", {}), "applied event"),
        "",
        "## Over time (seconds since the worker was started)",
        "",
        "| t s | applied ev/s | lag | pending | worker cpu % | redis cpu % |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["timeline"]:
        cpu = [row["processes"].get(role, {}).get("cpu_pct") for role in ("worker", "redis")]
        cells = [row["t"], row["applied_eps"], row["lag"], row["pending"], *cpu]
        lines.append("| " + " | ".join(fmt(c) for c in cells) + " |")
    if r["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in r["notes"]]]
    return "\n".join(lines) + "\n"
