"""python -m loadtest.applycost: Redis's cost per applied item of the `fanout` workload, counted.

The `fanout` stage's events (loadtest.fanout.workload: likes, follows, comments, one recipient
each) are planned and applied straight through feeds.inbox.Inbox, a worker's batch
(`FanoutSettings.batch_size` events) a round trip, on each backend asked for
(loadtest.clusterbench.opened): `single`, one plain redis-server; `cluster-1`, one redis-server
in cluster mode owning every slot (Redis's cluster mode alone); `cluster`, 3 masters. On a
cluster the calls go through the product's cluster client (feeds/cluster.py), as a worker's do.
Optionally a share of the recipients is subscribed to their channels (online: SSUBSCRIBE on
their master on a cluster, as the gateway does).

Printed per applied item: the commands the scripts ran (INFO commandstats, summed over the
masters) and, with `--callgrind`, the instructions Redis executed: every server runs under
valgrind's callgrind, whose counters are zeroed just before the first apply call and dumped
just after the last (loadtest/callgrind.py), summed over the masters. Counts do not drift with
a busy machine, so ratios between backends and between checkouts hold; what remains
time-dependent is Redis's own cron and cluster bus, kept small by `--hz 1` and a long
cluster-node-timeout (~120,000 instructions a second per server, under 1 % of a run). Run it
from two checkouts with PYTHONPATH set to each for a before/after.

    python -m loadtest.applycost --callgrind --backends single,cluster-1,cluster --out FILE

With `--native` (one Redis), the floor of another design instead: each item's command mix sent
as plain pipelined commands, no Lua, a batch's reads in one round trip and its writes in the
next, as a worker that computed the inbox itself would send them (the register, the state and
the horizon; the group's newest actor; the inbox's newest record; then the actor added, the
record pushed, the change logged, the register and the state written): what Redis would spend
per item if the logic left the script.

    python -m loadtest.applycost --callgrind --native --out FILE

With `--direct`, the items go through the fan-out's direct apply (feeds/direct.py,
NOTIFIER_FANOUT_DIRECT_APPLY): that design built, the users nobody listens to applied in plain
commands, the others by the script.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

import orjson
from redis.asyncio import Connection, Redis

from feeds.cluster import Cluster
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from feeds.scripts import Command, run_checked, scripts_for
from notifier.runtime.settings import FanoutSettings
from schemas import keys, layouts

from . import callgrind as cg
from .clusterbench import KINDS, master_clients, opened
from .fanout import EVENTS_PER_USER, workload

BATCH = FanoutSettings().batch_size  # events per round trip, as a worker's batch
END_MS = 1_800_000_000_000  # the workload's last event time: fixed, so every run applies the same items
# what the harness itself sends after the reset; every other command is a script's
_OWN = frozenset({"evalsha", "info", "config|resetstat"})


async def _subscribe(redis: Redis, channels: list[str]) -> list[Connection]:
    """Each channel subscribed on the server owning it, one connection per server, confirmed."""
    by_server: dict[tuple[str, int], list[str]] = defaultdict(list)
    for channel in channels:
        if isinstance(redis, Cluster):
            node = redis.nodes_manager.get_node_from_slot(redis.keyslot(channel))
            by_server[node.host, node.port].append(channel)
        else:
            options = redis.connection_pool.connection_kwargs
            by_server[options["host"], options["port"]].append(channel)
    command = "SSUBSCRIBE" if isinstance(redis, Cluster) else "SUBSCRIBE"
    conns = []
    for (host, port), group in by_server.items():
        conn = Connection(host=host, port=port)
        await conn.connect()
        conns.append(conn)
        for channel in group:
            await conn.send_command(command, channel)
            await conn.read_response()
    return conns


async def measure(
    kind: str, events: int, online_pct: int, callgrind: bool, profiles: Path | None, direct: bool = False
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="applycost-") as tmp:
        work = Path(tmp)
        wrapper = cg.wrapper(work) if callgrind else ()
        async with opened(kind, work / kind, 0, wrapper, cg.OPTIONS) as redis:
            masters = await master_clients(redis)
            limits = FeedLimits()
            log = workload(events, max(2, events // EVENTS_PER_USER), 1, "cost", END_MS)
            ops = [op for event in log for op in plan(event, limits)]
            users = sorted({op.user for op in ops})
            online = users[: len(users) * online_pct // 100]
            subscribers = await _subscribe(redis, [keys.user_channel(u) for u in online])
            inbox = Inbox(redis, limits, direct=direct)
            pids = []
            for m in masters:
                await m.script_load(scripts_for(redis).apply.source)
                await m.config_resetstat()
                pids.append(int((await m.info("server"))["process_id"]))
            if callgrind:
                await cg.control("-z", pids)
            per_batch = max(1, len(ops) * BATCH // max(1, len(log)))
            for start in range(0, len(ops), per_batch):
                errors = await inbox.apply(ops[start : start + per_batch])
                if any(errors):
                    raise RuntimeError(f"apply failed: {errors}")
            if callgrind:
                await cg.control("-d", pids)
            calls: dict[str, int] = defaultdict(int)
            for m in masters:
                for name, stat in (await m.info("commandstats")).items():
                    calls[name.removeprefix("cmdstat_")] += int(stat["calls"])
            for conn in subscribers:
                await conn.disconnect()
        n = len(ops)
        nested = sum(c for name, c in calls.items() if name not in _OWN)
        out: dict[str, Any] = {
            "masters": len(masters),
            "items": n,
            "apply_calls": calls["evalsha"],
            "items_per_call": round(n / calls["evalsha"], 2),
            "commands_per_item": round(nested / n, 3),
            "commands": dict(sorted(calls.items())),
        }
        if callgrind:
            total = cg.dumped(work, pids, profiles, f"{kind}-online{online_pct}")
            out["instructions_per_item"] = round(total / n)
        return out


_STATE: Final = layouts.encode_state(
    layouts.UserState("0123456789ab", 1, 1, read_all_ms=0, group_marks=False)
)
_LOGGED: Final = layouts.encode_log_check(layouts.CHECK_MIN) + layouts.OP_UPSERT.encode() + b"1 "


def _native(op: ItemOp) -> tuple[list[Command], list[Command]]:
    """The commands an apply of `op` runs, as plain commands, with values in the layouts the
    script stores (schemas/layouts.py)."""
    items, inbox, log = keys.toggles(op.user), keys.inbox(op.user), keys.changelog(op.user)
    actors = keys.group_actors_prefix(op.user) + op.group_id
    ms = layouts.encode_ms(op.at_ms)
    window = op.group_id.rpartition(":")[2] if not op.single else ""
    register = layouts.encode_register(
        layouts.Register("a", op.at_ms, layouts.register_token(op.event_id), window)
    )
    reads: list[Command] = [
        ("HMGET", items, op.item, layouts.STATE_FIELD, layouts.HORIZON_FIELD),
        ("ZRANGE", actors, -1, -1),
        ("LINDEX", inbox, 0),
    ]
    writes: list[Command] = [
        ("ZADD", actors, op.at_ms, ms + op.actor.encode()),
        ("LPUSH", inbox, ms + op.group_id.encode()),
        ("RPUSH", log, _LOGGED + op.group_id.encode()),
        ("HSET", items, op.item, register, layouts.STATE_FIELD, _STATE),
    ]
    return reads, writes


async def measure_native(events: int, callgrind: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="applycost-") as tmp:
        work = Path(tmp)
        wrapper = cg.wrapper(work) if callgrind else ()
        async with opened("single", work / "single", 0, wrapper, cg.OPTIONS) as redis:
            log = workload(events, max(2, events // EVENTS_PER_USER), 1, "cost", END_MS)
            ops = [op for event in log for op in plan(event, FeedLimits())]
            await redis.config_resetstat()
            pid = int((await redis.info("server"))["process_id"])
            if callgrind:
                await cg.control("-z", [pid])
            per_batch = max(1, len(ops) * BATCH // max(1, len(log)))
            for start in range(0, len(ops), per_batch):
                commands = [_native(op) for op in ops[start : start + per_batch]]
                await run_checked(redis, [c for reads, _ in commands for c in reads])
                await run_checked(redis, [c for _, writes in commands for c in writes])
            if callgrind:
                await cg.control("-d", [pid])
            stats = await redis.info("commandstats")
        n = len(ops)
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
        out: dict[str, Any] = {
            "masters": 1,
            "items": n,
            "commands_per_item": round(sum(c for k, c in calls.items() if k not in _OWN) / n, 3),
            "commands": dict(sorted(calls.items())),
        }
        if callgrind:
            out["instructions_per_item"] = round(cg.dumped(work, [pid]) / n)
        return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.native:
        native = await measure_native(args.events, args.callgrind)
        print(
            f"native: items={native['items']} commands/item={native['commands_per_item']:.2f}"
            + (f" instructions/item={native['instructions_per_item']}" if args.callgrind else "")
        )
        command = f"python -m loadtest.applycost --native --events {args.events}"
        return {"command": command + (" --callgrind" if args.callgrind else ""), "native": native}
    out: dict[str, Any] = {
        "command": f"python -m loadtest.applycost --events {args.events} --online {args.online} "
        f"--backends {','.join(args.backends)}"
        + (" --callgrind" if args.callgrind else "")
        + (" --direct" if args.direct else ""),
        "batch_events": BATCH,
        "redis_options": " ".join(cg.OPTIONS),
    }
    for kind in args.backends:
        result = await measure(kind, args.events, args.online, args.callgrind, args.profiles, args.direct)
        out[kind] = result
        line = (
            f"{kind}: items={result['items']} online={args.online}% items/call={result['items_per_call']} "
            f"commands/item={result['commands_per_item']:.2f}"
        )
        if args.callgrind:
            line += f" instructions/item={result['instructions_per_item']}"
        print(line, flush=True)
    if args.callgrind and "single" in args.backends:
        for kind in args.backends:
            if kind != "single":
                ratio = out[kind]["instructions_per_item"] / out["single"]["instructions_per_item"]
                out[f"{kind}_vs_single"] = round(ratio, 3)
                print(f"{kind} / single instructions per item: {ratio:.3f}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m loadtest.applycost", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=2_000)
    p.add_argument("--online", type=int, default=0, help="percent of recipients subscribed")
    p.add_argument(
        "--backends",
        type=lambda s: s.split(","),
        default=["single"],
        help=f"comma-separated, of {', '.join(KINDS)}",
    )
    p.add_argument("--callgrind", action="store_true", help="count Redis's instructions (valgrind)")
    p.add_argument("--native", action="store_true", help="the item's commands without the script (one Redis)")
    p.add_argument(
        "--direct", action="store_true", help="the fan-out's direct apply (feeds/direct.py; one Redis)"
    )
    p.add_argument("--out", type=Path, help="write the results as JSON")
    p.add_argument("--profiles", type=Path, help="keep each master's callgrind dump here")
    args = p.parse_args()
    if unknown := set(args.backends) - set(KINDS):
        p.error(f"unknown backends: {', '.join(sorted(unknown))}")
    result = asyncio.run(run(args))
    if args.out:
        args.out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    main()
