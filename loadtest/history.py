"""python -m loadtest.storage --history: one busy user's memory over a long synthetic history.

A private redis-server holds two copies of the same user: both get the same likes of the user's
posts (some undone a little later) over simulated months, straight through `feeds.inbox.Inbox`;
one of them is swept like a worker does (feeds/horizon.py: registers past the horizon trimmed
every `--sweep-hours` of simulated time), the other never. At checkpoints it records each copy's
`ni:` registers (fields, MEMORY USAGE) and the bytes of all the user's keys, so the curve shows
whether memory stays flat. Writes `storage-history-YYYYmmdd-HHMMSS.{json,md}` under `--out`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import anyio
import orjson
from redis.asyncio import Redis

from feeds.horizon import Registers
from feeds.inbox import Inbox
from feeds.items import plan
from feeds.limits import FeedLimits
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.events import Event, Like, Unlike

from .stack import private_stack
from .storage import heading, revision  # (storage imports this module only for --history)

USER: Final = "star"
START: Final = datetime(2026, 1, 1, tzinfo=UTC)
DAY_MS: Final = 86_400_000
CHECKPOINTS: Final = 12


@dataclass(frozen=True, slots=True)
class History:
    likes: int = 1_000_000
    days: int = 90
    fans: int = 200_000  # distinct actors
    posts_per_day: int = 10  # the user's new posts; likes go to the last three days' posts
    undo_share: float = 0.1  # likes undone (an unlike a few minutes to hours later)
    sweep_hours: int = 24  # simulated time between sweeps
    horizon_days: float = 0.0  # 0: the product's default (retention + lateness + skew)
    batch: int = 256
    seed: int = 1


def events(h: History) -> Iterator[Event]:
    """Likes in time order, each maybe followed by its unlike; seeded."""
    rng = random.Random(h.seed)
    step_ms = h.days * DAY_MS / h.likes
    start_ms = int(START.timestamp() * 1000)
    for i in range(h.likes):
        at_ms = start_ms + int(i * step_ms)
        day = int(i * step_ms // DAY_MS)
        post = f"p{day - min(int(rng.expovariate(1.5)), 2, day)}-{rng.randrange(h.posts_per_day)}"
        fan = f"fan{rng.randrange(h.fans)}"
        at = START + timedelta(milliseconds=at_ms - start_ms)
        yield Like(id=f"l{i}", actor=fan, occurred_at=at, post=post, owner=USER)
        if rng.random() < h.undo_share:
            later = at + timedelta(seconds=rng.randrange(60, 6 * 3600))
            yield Unlike(id=f"u{i}", actor=fan, occurred_at=later, post=post, owner=USER)


async def user_bytes(redis: Redis) -> tuple[int, int, int]:
    """(`ni:` fields, `ni:` bytes, bytes of every key in the database: the one user's)."""
    toggles = keys.toggles(USER)
    total = 0
    async for key in redis.scan_iter(count=1_000):
        total += int(await redis.memory_usage(key, samples=0) or 0)
    return int(await redis.hlen(toggles)), int(await redis.memory_usage(toggles, samples=0) or 0), total


async def measure(url: str, h: History) -> dict[str, Any]:
    limits = FeedLimits()
    horizon_ms = int(h.horizon_days * DAY_MS) or Settings().register_horizon_ms
    assert horizon_ms is not None
    base = urlsplit(url)
    swept, kept = (Redis.from_url(urlunsplit(base._replace(path=f"/{db}"))) for db in (0, 1))
    try:
        trimmed_inbox, kept_inbox = Inbox(swept, limits), Inbox(kept, limits)
        registers = Registers(swept, limits)
        sweep_ms, next_sweep = h.sweep_hours * 3_600_000, 0
        checkpoint_every = max(h.likes // CHECKPOINTS, 1)
        rows: list[dict[str, Any]] = []
        sweeps = {"runs": 0, "deleted": 0, "seconds": 0.0}
        likes = 0
        ops: list[Any] = []
        started = time.perf_counter()
        for event in events(h):
            ops += plan(event, limits)
            likes += isinstance(event, Like)
            if len(ops) >= h.batch:
                for inbox in (trimmed_inbox, kept_inbox):
                    failed = [e for e in await inbox.apply(ops) if e is not None]
                    if failed:
                        raise RuntimeError(f"apply failed: {failed[0]!r}")
                ops = []
            now_ms = event.at_ms
            if now_ms >= next_sweep:
                t0 = time.perf_counter()
                sweeps["deleted"] += await registers.trim(USER, now_ms - horizon_ms)
                sweeps["seconds"] += time.perf_counter() - t0
                sweeps["runs"] += 1
                next_sweep = now_ms + sweep_ms
            if isinstance(event, Like) and likes % checkpoint_every == 0:
                rows.append(await checkpoint(likes, now_ms, swept, kept))
        for inbox in (trimmed_inbox, kept_inbox):
            await inbox.apply(ops)
        server = await swept.info("server")
        return {
            "redis_version": server["redis_version"],
            "horizon_ms": horizon_ms,
            "wall_s": round(time.perf_counter() - started, 1),
            "sweeps": {**sweeps, "seconds": round(float(sweeps["seconds"]), 2)},
            "checkpoints": rows,
        }
    finally:
        await swept.aclose()
        await kept.aclose()


async def checkpoint(likes: int, now_ms: int, swept: Redis, kept: Redis) -> dict[str, Any]:
    start_ms = int(START.timestamp() * 1000)
    s_fields, s_ni, s_all = await user_bytes(swept)
    k_fields, k_ni, k_all = await user_bytes(kept)
    row = {"likes": likes, "day": round((now_ms - start_ms) / DAY_MS, 1)}
    row |= {"swept_registers": s_fields, "swept_ni_bytes": s_ni, "swept_user_bytes": s_all}
    row |= {"kept_registers": k_fields, "kept_ni_bytes": k_ni, "kept_user_bytes": k_all}
    print(f"  {row}", file=sys.stderr, flush=True)
    return row


def markdown(r: dict[str, Any]) -> str:
    h, rows = r["history"], r["checkpoints"]
    lines = [
        *heading("storage history", r),
        f"One user receives {h['likes']:,} likes over {h['days']} simulated days from {h['fans']:,} fans "
        f"({h['undo_share']:.0%} undone); horizon {r['horizon_ms'] / DAY_MS:.2f} days, a sweep every "
        f"{h['sweep_hours']} simulated hours ({r['sweeps']['runs']} sweeps deleted "
        f"{r['sweeps']['deleted']:,} registers in {r['sweeps']['seconds']} s). Both copies get the "
        "same events; only the first is swept.",
        "",
        "| likes | day | swept: registers | swept: `ni:` MB | swept: user MB | never swept: registers "
        "| never swept: `ni:` MB | never swept: user MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mb = 2**20
    for row in rows:
        cells = [f"{row['likes']:,}", str(row["day"])]
        for copy in ("swept", "kept"):
            cells += [f"{row[copy + '_registers']:,}", f"{row[copy + '_ni_bytes'] / mb:.2f}"]
            cells.append(f"{row[copy + '_user_bytes'] / mb:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    settled = [row for row in rows if row["day"] * DAY_MS >= r["horizon_ms"]]
    if settled:
        peak = max(row["swept_user_bytes"] for row in settled)
        last = rows[-1]
        lines += [
            "",
            f"Past the horizon the swept user stays at or below **{peak / mb:.2f} MB** "
            f"(peak over {len(settled)} checkpoints); at the end it holds "
            f"{last['swept_user_bytes'] / last['kept_user_bytes']:.2f}× the bytes of the copy never swept.",
        ]
    return "\n".join(lines) + "\n"


def run(h: History) -> dict[str, Any]:
    with private_stack("notifier", partitions=1, extra_env={}) as stack:
        started = datetime.now(UTC).isoformat(timespec="seconds")
        result = anyio.run(measure, stack.redis_url, h)
    return {
        "started_at": started,
        "command": " ".join(["python -m loadtest.storage", *sys.argv[1:]]),
        "revision": revision(),
        "history": asdict(h),
        **result,
    }


def main(argv: Sequence[str]) -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.storage --history", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    d = History()
    p.add_argument("--likes", type=int, default=d.likes)
    p.add_argument("--days", type=int, default=d.days, help="simulated days the likes spread over")
    p.add_argument("--fans", type=int, default=d.fans)
    p.add_argument("--undo-share", type=float, default=d.undo_share)
    p.add_argument("--sweep-hours", type=int, default=d.sweep_hours)
    p.add_argument("--horizon-days", type=float, default=d.horizon_days, help="0: the product's default")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", type=Path, default=Path("loadtest/results"))
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    h = History(
        likes=args.likes,
        days=args.days,
        fans=args.fans,
        undo_share=args.undo_share,
        sweep_hours=args.sweep_hours,
        horizon_days=args.horizon_days,
        seed=args.seed,
    )
    result = run(h)
    text = markdown(result)
    print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"storage-history-{time.strftime('%Y%m%d-%H%M%S')}"
        stem.with_suffix(".json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        stem.with_suffix(".md").write_text(text)
        print(f"wrote {stem}.json and .md")
