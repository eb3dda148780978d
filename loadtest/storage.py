"""python -m loadtest.storage: Redis bytes per stored notification and Redis cost per applied item.

Starts a private redis-server, applies a seeded synthetic workload straight through
`feeds.inbox.Inbox` (no HTTP, no workers): 10-recipient mentions with ~60-character texts (most
notifications), likes that aggregate per post, comments and follows. Then it measures

- memory: `used_memory` grown ÷ inbox groups held, and MEMORY USAGE / encodings per key family;
- apply: Redis µs per EVALSHA (INFO commandstats), Redis commands run per item, Redis CPU per item
  (INFO cpu) and items/s applied by one client sending pipelines of `--batch` items;
- reads: the same figures for first inbox pages, a full change-log replay and a resume that
  missed the last 3 changes, of 200 sampled users.

It prints a Markdown summary and writes `storage-YYYYmmdd-HHMMSS.{json,md}` under `--out`.
With `--history`, it measures one busy user's memory over simulated months instead
(loadtest/history.py).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from feeds.scripts import InboxScripts, Script
from schemas import cursor
from schemas.events import Comment, Event, Follow, Like, Mention

from .graph import user_id
from .metrics import bytes_by_kind, footprint, inbox_fill, key_families
from .report import family_rows, fill_summary, kind_summary
from .stack import private_stack

START: Final = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_S: Final = 3 * 86_400  # the workload's events spread over three aggregation windows
POSTS_PER_USER: Final = 5
READ_SAMPLE: Final = 200  # users whose first page and change log are read in the read phase
RESUMED: Final = 3  # changes a resume after a short disconnect replays
# share of the notifications (not of the events) each kind produces
MIX: Final = {"mention": 0.70, "like": 0.15, "comment": 0.10, "follow": 0.05}
WORDS: Final = (
    "great shot of the lake this morning thanks for sharing see you at the meetup on friday "
    "love how the colours came out what lens did you use congrats on the launch team"
).split()


@dataclass(frozen=True, slots=True)
class Workload:
    users: int = 2_000
    per_user: int = 150  # notifications per user on average
    fanout: int = 10  # recipients per mention
    seed: int = 1
    batch: int = 256  # items per pipeline (the fan-out's default batch)


def text(rng: random.Random, length: int = 60) -> str:
    words: list[str] = []
    while len(" ".join(words)) < length:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:length].rstrip()


def events(w: Workload) -> Iterator[Event]:
    """Seeded events, in time order, until they notify `users * per_user` recipients in all."""
    rng = random.Random(w.seed)
    per_event = {"mention": w.fanout, "like": 1, "comment": 1, "follow": 1}
    kinds = list(MIX)
    weights = [MIX[k] / per_event[k] for k in kinds]
    target = w.users * w.per_user
    expected_events = target / sum(MIX[k] / sum(weights) * per_event[k] for k in kinds)
    step_ms = SPAN_S * 1000 / expected_events
    run = f"{rng.getrandbits(32):08x}"
    notified = seq = 0
    while notified < target:
        seq += 1
        kind = rng.choices(kinds, weights)[0]
        actor = rng.randrange(w.users)
        at = START + timedelta(milliseconds=int(seq * step_ms))
        common: dict[str, Any] = {"id": f"{run}.{seq}", "actor": user_id(actor), "occurred_at": at}
        other = (actor + 1 + rng.randrange(w.users - 1)) % w.users
        post = f"p{other}-{min(int(rng.expovariate(1.0)), POSTS_PER_USER - 1)}"  # popular first posts
        if kind == "mention":
            users = {user_id(u) for u in rng.sample(range(w.users), w.fanout + 1) if u != actor}
            mentioned = sorted(users)[: w.fanout]
            in_comment = rng.random() < 0.5
            comment = f"c{run}.{seq}" if in_comment else None
            yield Mention(**common, post=post, users=mentioned, comment=comment, text=text(rng))
            notified += len(mentioned)
            continue
        if kind == "like":
            yield Like(**common, post=post, owner=user_id(other))
        elif kind == "comment":
            yield Comment(**common, post=post, owner=user_id(other), comment=f"c{run}.{seq}", text=text(rng))
        else:
            yield Follow(**common, user=user_id(other))
        notified += 1


def batches(w: Workload, limits: FeedLimits, kinds: Counter[str]) -> Iterator[list[ItemOp]]:
    ops: list[ItemOp] = []
    for event in events(w):
        kinds[type(event).__name__.lower()] += 1
        ops += plan(event, limits)
        if len(ops) >= w.batch:
            yield ops[: w.batch]
            ops = ops[w.batch :]
    if ops:
        yield ops


# measuring -------------------------------------------------------------------------------------


async def command_stats(redis: Redis) -> dict[str, dict[str, float]]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): row for name, row in stats.items()}


async def redis_cpu_s(redis: Redis) -> float:
    cpu = await redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


@dataclass(slots=True)
class Phase:
    """Redis-side cost of one phase: reset the command stats first, read them afterwards."""

    name: str
    operations: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stats: dict[str, dict[str, float]] | None = None

    def summary(self) -> dict[str, Any]:
        stats = self.stats or {}
        scripts = {k: v for k, v in stats.items() if k in ("evalsha", "eval")}
        script_calls = sum(int(v["calls"]) for v in scripts.values())
        inner = sum(int(v["calls"]) for k, v in stats.items() if k not in ("evalsha", "eval", "config"))
        # a script's own usec includes the commands it ran (also listed): count top-level calls only
        top = scripts or {k: v for k, v in stats.items() if k not in ("config", "info")}
        usec = sum(float(v["usec"]) for v in top.values())
        n = max(self.operations, 1)
        return {
            "operations": self.operations,
            "wall_s": round(self.wall_s, 3),
            "operations_per_s": round(self.operations / self.wall_s) if self.wall_s else None,
            "script_calls": script_calls,
            "evalsha_usec_per_call": scripts["evalsha"]["usec_per_call"] if "evalsha" in scripts else None,
            "redis_usec_per_operation": round(usec / n, 2),
            "redis_cpu_usec_per_operation": round(self.cpu_s * 1e6 / n, 2),
            "redis_commands_per_operation": round(inner / n, 2),
            "commands": {
                k: {"calls": int(v["calls"]), "usec_per_call": float(v["usec_per_call"])}
                for k, v in sorted(stats.items())
                if not k.startswith(("config", "info"))
            },
        }


class measured:
    def __init__(self, redis: Redis, phase: Phase) -> None:
        self.redis, self.phase = redis, phase

    async def __aenter__(self) -> Phase:
        await self.redis.config_resetstat()
        self._cpu = await redis_cpu_s(self.redis)
        self._t0 = time.perf_counter()
        return self.phase

    async def __aexit__(self, *exc: object) -> None:
        self.phase.wall_s = time.perf_counter() - self._t0
        self.phase.cpu_s = await redis_cpu_s(self.redis) - self._cpu
        self.phase.stats = await command_stats(self.redis)


# the run ------------------------------------------------------------------------------------------


async def measure(url: str, w: Workload, limits: FeedLimits) -> dict[str, Any]:
    redis = Redis.from_url(url)
    try:
        inbox = Inbox(redis, limits)
        scripts = InboxScripts.load()
        for f in fields(scripts):  # loaded up front: no NOSCRIPT retry inside the measurement
            script = getattr(scripts, f.name)
            if isinstance(script, Script):  # not the `sharded` flag
                await redis.script_load(script.source)
        before = await footprint(redis)
        kinds: Counter[str] = Counter()
        apply = Phase("apply")
        async with measured(redis, apply):
            for ops in batches(w, limits, kinds):
                errors = [e for e in await inbox.apply(ops) if e is not None]
                if errors:
                    raise RuntimeError(f"apply failed: {errors[0]!r}")
                apply.operations += len(ops)
        after = await footprint(redis)
        users = [user_id(i) for i in range(w.users)]
        full, under = await inbox_fill(redis, users, limits.max_groups)
        stored = full.groups + under.groups
        sample = random.Random(w.seed).sample(users, min(READ_SAMPLE, len(users)))
        page = Phase("page")
        async with measured(redis, page):
            for user in sample:
                await inbox.page(user, None, 20)
                page.operations += 1
        replay = Phase("replay")
        replayed, recent = 0, []
        async with measured(redis, replay):
            for user in sample:
                result = await changelog.read_after(redis, user, cursor.START, 1_000)
                if isinstance(result, changelog.Replay):
                    replayed += len(result.changes)
                    if len(result.changes) > RESUMED:
                        recent.append((user, result.changes[-RESUMED - 1].cursor))
                replay.operations += 1
        resume = Phase("resume")  # a reconnect that missed the last few changes
        async with measured(redis, resume):
            for user, position in recent:
                await changelog.read_after(redis, user, position, 1_000)
                resume.operations += 1
        families = await key_families(redis, stored)
        server = await redis.info("server")
        return {
            "redis_version": server["redis_version"],
            "events": dict(kinds),
            "items_applied": apply.operations,
            "groups_held": stored,
            "memory": {
                "used_before": before.used,
                "used_after": after.used,
                "grown": after.used - before.used,
                "bytes_per_notification": round((after.used - before.used) / stored, 1) if stored else None,
                "by_kind": bytes_by_kind(families, before, after, stored),
                "inbox_by_fill": {"at the cap": full.summary(), "under the cap": under.summary()},
                "families": families,
            },
            "apply": apply.summary(),
            "page": page.summary(),
            "replay": {**replay.summary(), "changes_replayed": replayed},
            "resume": {**resume.summary(), "changes_replayed": RESUMED * len(recent)},
        }
    finally:
        await redis.aclose()


def revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "feeds", "schemas"], capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run(w: Workload, limits: FeedLimits, label: str = "") -> dict[str, Any]:
    with private_stack("notifier", partitions=1, extra_env={}) as stack:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        result = anyio.run(measure, stack.redis_url, w, limits)
    return {
        "started_at": started,
        "command": " ".join(["python -m loadtest.storage", *sys.argv[1:]]),
        "revision": revision(),
        "label": label,
        "workload": asdict(w),
        "limits": asdict(limits),
        **result,
    }


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def heading(title: str, r: dict[str, Any]) -> list[str]:
    """A result's first lines: what, when, which revision and Redis, the label, the command."""
    return [
        f"# {title} ({r['started_at']}, revision {r['revision']}, Redis {r['redis_version']})",
        *(["", r["label"]] if r.get("label") else []),
        "",
        f"`{r['command']}`",
        "",
    ]


def markdown(r: dict[str, Any]) -> str:
    m, w = r["memory"], r["workload"]
    lines = [
        *heading("storage benchmark", r),
        f"{w['users']:,} users × ~{w['per_user']} notifications, mentions to {w['fanout']} users; "
        f"events {r['events']}; {r['items_applied']:,} items applied; "
        f"{r['groups_held']:,} inbox groups held.",
        "",
        f"**{_n(m['bytes_per_notification'])} bytes per stored notification** "
        f"(used_memory {m['used_before'] / 2**20:,.1f} → {m['used_after'] / 2**20:,.1f} MB); by what the "
        f"bytes are for: {kind_summary(m['by_kind'])}; the inbox keys by fill: "
        f"{fill_summary(m['inbox_by_fill'])}.",
        "",
        *family_rows(m["families"]),
        "",
        "| phase | operations | ops/s (one client) | EVALSHA µs/call | Redis µs/op (commandstats) "
        "| Redis CPU µs/op | Redis commands/op |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("apply", "page", "replay", "resume"):
        p = r[name]
        cells = [
            p["operations"],
            p["operations_per_s"],
            p["evalsha_usec_per_call"],
            p["redis_usec_per_operation"],
            p["redis_cpu_usec_per_operation"],
            p["redis_commands_per_operation"],
        ]
        lines.append(f"| {name} | " + " | ".join(_n(c) for c in cells) + " |")
    lines += [
        "",
        "Commands run while applying (calls, µs each): "
        + ", ".join(f"{k} {v['calls']:,} ({v['usec_per_call']})" for k, v in r["apply"]["commands"].items()),
    ]
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"storage-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    paths[0].write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    paths[1].write_text(markdown(result))
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else list(argv)
    if "--history" in args_in:  # one busy user over simulated months: loadtest/history.py
        from . import history

        history.main([a for a in args_in if a != "--history"])
        return
    p = argparse.ArgumentParser(
        prog="python -m loadtest.storage",
        description=__doc__,
        epilog="--history: one busy user's memory over simulated months (see loadtest/history.py)",
    )
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    defaults = Workload()
    p.add_argument("--users", type=int, default=defaults.users)
    p.add_argument("--per-user", type=int, default=defaults.per_user, help="notifications per user")
    p.add_argument("--fanout", type=int, default=defaults.fanout, help="recipients per mention")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch", type=int, default=defaults.batch, help="items per pipeline")
    p.add_argument("--out", type=Path, default=Path("loadtest/results"))
    p.add_argument("--label", default="", help="a note kept with the result (what was measured)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(args_in)
    if not 1 <= args.fanout < args.users:
        p.error("--fanout must be at least 1 and below --users")
    w = Workload(args.users, args.per_user, args.fanout, args.seed, args.batch)
    result = run(w, FeedLimits(), args.label)
    print(markdown(result))
    if not args.no_write:
        for path in write(result, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
