"""One run: connect the observers, produce for the scenario's duration, drain, check the ledger,
and gather every measurement into one result (a plain dict, written by loadtest.report)."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import anyio
from redis.asyncio import Redis

from feeds.cluster import Cluster
from notifier.runtime.redis import open_redis
from notifier.runtime.settings import RedisSettings, Settings

from .cluster import ClusterLab
from .graph import SocialGraph, user_id
from .ledger import Ledger, check
from .lost import BY_DESIGN, explain_lost
from .metrics import (
    CommandStats,
    Footprint,
    GroupState,
    ProcessMeter,
    bytes_by_kind,
    command_stats,
    commands_per_event,
    consumer_groups,
    cpu_used,
    footprint,
    inbox_fill,
    key_families,
    process_summary,
    summary_ms,
    used_memory,
)
from .observers import Observers
from .producers import Source, SourceFactory, http_source
from .progress import Progress
from .results import latency_section, timeline_latency
from .scenarios import Scenario
from .stack import Target, local_stack

CONNECT_TIMEOUT_S: Final = 120.0
REFUSALS: Final = frozenset({"close:unauthorized", "close:token_expired", "close:connect_error"})
TICK_S: Final = 1.0


@dataclass(slots=True)
class Run:
    scenario: Scenario
    target: Target
    progress: Progress
    source: SourceFactory
    settings: Settings  # as the target's roles read them (what explain needs: loadtest/lost.py)
    run_id: str = field(default_factory=lambda: "lt" + secrets.token_hex(4))
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def target_for(
    scenario: Scenario,
    kind: str,
    given: Target | None,
    extra_env: dict[str, str],
    cluster: ClusterLab | None = None,
) -> Iterator[Target]:
    if given is not None:
        yield given
        return
    with local_stack(
        kind,
        apis=scenario.apis,
        workers=scenario.workers,
        gateways=scenario.gateways,
        partitions=scenario.partitions,
        extra_env=extra_env,
        masters=scenario.masters,
        cluster=cluster,
    ) as target:
        yield target


def run_scenario(
    scenario: Scenario,
    *,
    kind: str = "notifier",
    given: Target | None = None,
    extra_env: dict[str, str] | None = None,
    progress: bool = True,
    source: SourceFactory = http_source,
    cluster: ClusterLab | None = None,
) -> dict[str, Any]:
    """Run `scenario` against `given` or a local stack of `kind` (on `cluster`, a running Redis
    Cluster, when given), with the events sent by `source` (POSTs to the API by default);
    returns the result."""
    problems = scenario.problems()
    if problems:
        raise ValueError("; ".join(problems))
    with target_for(scenario, kind, given, extra_env or {}, cluster) as target:
        # a local stack's roles see extra_env's NOTIFIER_ variables only (stack.py); for a given
        # target, this process's environment is the best guess at the deployment's settings
        env = {
            **(os.environ if given else extra_env or {}),
            "NOTIFIER_INGEST_PARTITIONS": str(scenario.partitions),
        }
        run = Run(scenario, target, Progress(enabled=progress), source, Settings.from_env(env))
        result: dict[str, Any] = anyio.run(_run, run, backend="asyncio", backend_options={"use_uvloop": True})
    result["stack_env"] = {} if given is not None else dict(extra_env or {})
    return result


@dataclass(slots=True)
class Phases:
    """What the driving of a run measured on the way."""

    t0_ns: int = 0
    connect_s: float = 0.0
    produce_s: float = 0.0
    drain_s: float = 0.0
    rss_before: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_connected: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    groups_before: GroupState | None = None
    commands: tuple[CommandStats, CommandStats] | None = None  # one Redis: before producing, after draining


async def _run(run: Run) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        redis = None
        if run.target.redis_url:
            settings = RedisSettings(url=run.target.redis_url, cluster=run.target.redis_cluster)
            redis = (await stack.enter_async_context(open_redis(settings, allow_fake=False))).client
        return await _measure(run, redis)


async def _measure(run: Run, redis: Redis | None) -> dict[str, Any]:
    s, target = run.scenario, run.target
    graph = SocialGraph(s.user_count, s.clients, s.skew, s.seed)
    meter = ProcessMeter()
    for role, pids in target.pids.items():
        for pid in pids:
            meter.watch(role, pid)
    ledger = Ledger()
    memory_before = await footprint(redis) if redis else None
    observers = Observers.spawn(s, graph, target, run.run_id, ledger)
    try:
        producer = run.source(s, graph, ledger, target, run.run_id)
        meter.watch_self(observers.pids + producer.pids)
        try:
            phases = await _drive(run, observers, producer, meter, redis)
        finally:
            producer.close()
    finally:
        observers.kill()  # only those still running: after an error
    run.progress.done()
    final = await consumer_groups(redis, target.partitions) if redis else None
    memory = {}
    if memory_before is not None and s.stage == "pipeline":  # push alone stores nothing
        memory = await _memory(redis, graph, ledger, memory_before, run.settings.feeds.max_groups)
    verdict = check(ledger, observers.receipts)
    lost_states: dict[str, int] = {}
    if verdict.lost and redis is not None and s.stage == "pipeline" and target.kind == "notifier":
        lost_states = await explain_lost(
            redis, run.settings, run.run_id, verdict.lost_pairs, observers.unseen
        )
    processes = _processes(meter, run.timeline, phases, len(graph.online))
    # (online recipient, event) pairs: every applied item when every user is online (users = clients)
    items = ledger.expected_pairs()
    for role in ("redis", "worker", "api", "gateway"):
        used = processes.get(role, {}).get("cpu_s")
        if used is not None and items:
            processes[role]["cpu_us_per_delivery"] = round(used * 1e6 / items, 1)
    return {
        "scenario": asdict(s),
        "target": {"kind": target.kind, "api_urls": target.api_urls, "gateway_urls": target.gateway_urls},
        "run_id": run.run_id,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(phases.t0_ns / 1e9)),
        "phases_s": {
            "connect": round(phases.connect_s, 2),
            "produce": round(phases.produce_s, 2),
            "drain": round(phases.drain_s, 2),
        },
        "throughput": _throughput(run, producer, ledger, observers, phases),
        "latency_ms": latency_section(verdict, producer.meter, "publish" if s.stage == "push" else "post"),
        "ledger": {
            "expected": verdict.expected,
            "received": verdict.received,
            "reach": verdict.reach,
            "lost": verdict.lost,
            "duplicated": verdict.duplicated,
            "unexpected": verdict.unexpected,
            "recovered": verdict.recovered,
            "lost_examples": verdict.lost_examples,
            # what explain says of the lost pairs; BY_DESIGN: the cap kept them out unpushed
            "lost_states": lost_states,
            "lost_by_design": lost_states.get(BY_DESIGN, 0),
            "duplicated_examples": verdict.duplicated_examples,
        },
        "clients": {
            "online": len(graph.online),
            "connected_at_start": observers.ready,
            "connect_ms": summary_ms(observers.connect_us),
            "counts": dict(observers.counts),
            "failures": observers.failures,
        },
        "fanout": {
            "final_lag": final.lag if final else None,
            "final_pending": final.pending if final else None,
            "max_backlog": max(
                (row.get("lag", 0) + row.get("pending", 0) for row in run.timeline), default=0
            ),
        },
        "memory": memory,
        "processes": processes,
        "redis_commands": (
            commands_per_event(*phases.commands, ledger.counts()["accepted"]) if phases.commands else {}
        ),
        "graph": {"users": graph.users, "skew": graph.skew, "top_user_share": round(graph.top_share(), 4)},
        "timeline": run.timeline,
        "timeline_latency": timeline_latency(verdict, phases.t0_ns),
        "notes": run.notes + producer.meter.notes,
    }


async def _drive(
    run: Run, observers: Observers, producer: Source, meter: ProcessMeter, redis: Redis | None
) -> Phases:
    """Connect the observers, produce, drain, stop the observers."""
    phases = Phases(rss_before=meter.sample())
    async with anyio.create_task_group() as tg:
        for child in observers.children:
            tg.start_soon(observers.follow, child)
        phases.connect_s = await _connect(run, observers)
        phases.rss_connected = meter.sample()
        cpu_before = meter.cpu_seconds()
        phases.t0_ns = time.time_ns() + 200_000_000
        observers.start(phases.t0_ns)
        groups = await consumer_groups(redis, run.target.partitions) if redis else None
        phases.groups_before = groups
        sampler = _Sampler(run, observers, producer, meter, redis, phases.t0_ns, groups)
        tg.start_soon(sampler.loop)
        # INFO commandstats of one Redis (a cluster's are per master: not summed)
        single = redis if redis is not None and not isinstance(redis, Cluster) else None
        commands_before = await command_stats(single) if single else None
        await producer.run(phases.t0_ns)
        phases.produce_s = (time.time_ns() - phases.t0_ns) / 1e9
        phases.drain_s = await _drain(run, observers, producer.ledger, sampler)
        sampler.stop()
        if commands_before is not None:  # set with `single`
            assert single is not None
            phases.commands = (commands_before, await command_stats(single))
        phases.cpu_s = cpu_used(cpu_before, meter.cpu_seconds())  # while every process still runs
        await observers.stop()
    return phases


async def _memory(
    redis: Redis, graph: SocialGraph, ledger: Ledger, before: Footprint, max_groups: int
) -> dict[str, Any]:
    """Redis memory grown over the run, per notification stored in the inboxes and per event, and
    where it went: by key family and by what the families are for."""
    full, under = await inbox_fill(redis, [user_id(u) for u in range(graph.users)], max_groups)
    stored = full.groups + under.groups
    after = await footprint(redis)
    grown = after.used - before.used
    accepted = ledger.counts()["accepted"]
    families = await key_families(redis, stored)
    return {
        "used_before_mb": round(before.used / 2**20, 2),
        "used_after_mb": round(after.used / 2**20, 2),
        "notifications_stored": stored,
        "bytes_per_notification": round(grown / stored) if stored else None,
        "bytes_per_accepted_event": round(grown / accepted) if accepted else None,
        "by_kind": bytes_by_kind(families, before, after, stored),
        "inbox_by_fill": {"at the cap": full.summary(), "under the cap": under.summary()},
        "families": families,
    }


def _throughput(
    run: Run, producer: Source, ledger: Ledger, observers: Observers, phases: Phases
) -> dict[str, Any]:
    statuses = ledger.counts()
    produced_s = phases.produce_s
    return {
        "offered_eps": round(producer.meter.offered / produced_s, 1),
        "sent_eps": round(producer.meter.sent / produced_s, 1),
        "accepted_eps": round((statuses["accepted"] + statuses["duplicate"]) / produced_s, 1),
        "delivered_nps": _delivered_rate(observers.receipts.received_ns, phases.t0_ns),
        "fanout_processed_eps": _busy_rate(run.timeline),
        "fanout_processed_eps_peak": max((r.get("processed_eps", 0) for r in run.timeline), default=None),
        "requests": producer.meter.http,
        "events": dict(statuses),
    }


async def _connect(run: Run, observers: Observers) -> float:
    started = time.monotonic()
    want = run.scenario.clients
    while observers.ready < want and time.monotonic() - started < CONNECT_TIMEOUT_S:
        if observers.failures:
            raise RuntimeError("; ".join(observers.failures))
        refused = {k: n for c in observers.children for k, n in c.stats.items() if k in REFUSALS}
        if refused and not observers.ready:
            raise RuntimeError(f"the gateway refuses our clients: {refused} (wrong JWT secret or audience?)")
        run.progress.line(f"connecting {observers.ready}/{want} clients")
        await anyio.sleep(0.25)
    if observers.ready < want:
        run.notes.append(f"only {observers.ready}/{want} clients connected within {CONNECT_TIMEOUT_S}s")
    return time.monotonic() - started


async def _drain(run: Run, observers: Observers, ledger: Ledger, sampler: _Sampler) -> float:
    """Wait until the backlog is empty and deliveries stop (or the drain budget runs out)."""
    started = time.monotonic()
    expected = ledger.expected_pairs()
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - started < run.scenario.drain_s:
        await anyio.sleep(0.25)
        received = observers.total("received")
        if received != last:
            last, quiet_since = received, time.monotonic()
        idle = sampler.groups is None or (sampler.groups.lag == 0 and sampler.groups.pending == 0)
        quiet_s = 1.5 if received >= expected else 5.0
        if idle and time.monotonic() - quiet_since >= quiet_s:
            return time.monotonic() - started
    run.notes.append(f"drain stopped after {run.scenario.drain_s}s with deliveries outstanding")
    return time.monotonic() - started


def _delivered_rate(received_ns: Sequence[int], t0_ns: int) -> float:
    """Notifications received per second, from the start to the last one received."""
    if not received_ns:
        return 0.0
    return round(len(received_ns) / max(1e-3, (max(received_ns) - t0_ns) / 1e9), 1)


def _busy_rate(timeline: list[dict[str, Any]]) -> float | None:
    """Fan-out events/s over the seconds that started with a backlog (the worker had work waiting)."""
    busy = [
        row["processed_eps"]
        for before, row in itertools.pairwise(timeline)
        if before.get("lag", 0) + before.get("pending", 0) > 0 and "processed_eps" in row
    ]
    return round(sum(busy) / len(busy), 1) if busy else None


def _processes(
    meter: ProcessMeter, timeline: list[dict[str, Any]], phases: Phases, clients: int
) -> dict[str, Any]:
    seconds = phases.produce_s + phases.drain_s
    out = process_summary(meter, timeline, phases.cpu_s, seconds)
    before, connected = phases.rss_before.get("gateway"), phases.rss_connected.get("gateway")
    if before and connected and clients:
        grown_mb = connected["rss_mb"] - before["rss_mb"]
        out["gateway"]["rss_per_connection_kb"] = round(grown_mb * 1024 / clients, 1)
    return out


class _Sampler:
    """Once a second: a timeline row and the progress line."""

    def __init__(
        self,
        run: Run,
        observers: Observers,
        producer: Source,
        meter: ProcessMeter,
        redis: Redis | None,
        t0_ns: int,
        groups: GroupState | None,
    ) -> None:
        self.run, self.observers, self.producer, self.meter = run, observers, producer, meter
        self.redis, self.t0_ns, self.groups = redis, t0_ns, groups
        self._stopping = anyio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def loop(self) -> None:
        await anyio.sleep(max(0.0, (self.t0_ns - time.time_ns()) / 1e9))
        prev = {"offered": 0, "accepted": 0, "received": 0, "read": self.groups.read if self.groups else 0}
        tick = 1
        while not self._stopping.is_set():
            with anyio.move_on_after((self.t0_ns + tick * TICK_S * 1e9 - time.time_ns()) / 1e9):
                await self._stopping.wait()
            prev = await self._tick(prev)
            tick = max(tick + 1, int((time.time_ns() - self.t0_ns) / 1e9 / TICK_S) + 1)

    async def _tick(self, prev: dict[str, int]) -> dict[str, int]:
        m = self.producer.meter
        t = round((time.time_ns() - self.t0_ns) / 1e9, 2)
        now = {
            "offered": m.offered,
            "accepted": m.statuses.get("accepted", 0) + m.statuses.get("duplicate", 0),
            "received": self.observers.total("received"),
            "read": prev["read"],
        }
        row: dict[str, Any] = {"t": t}
        for name, label in (
            ("offered", "offered_eps"),
            ("accepted", "accepted_eps"),
            ("received", "delivered_nps"),
        ):
            row[label] = (now[name] - prev[name]) / TICK_S
        if self.redis is not None:
            with contextlib.suppress(OSError, TimeoutError):
                self.groups = await consumer_groups(self.redis, self.run.target.partitions)
                now["read"] = self.groups.read
                row |= {"lag": self.groups.lag, "pending": self.groups.pending}
                row["backlog_by_partition"] = list(self.groups.backlog_by_partition)
                row["processed_eps"] = (now["read"] - prev["read"]) / TICK_S
                row["used_memory_mb"] = round(await used_memory(self.redis) / 2**20, 1)
        live = summary_ms(self.observers.take_live())
        row |= {"p50_ms": live.get("p50"), "p99_ms": live.get("p99")}
        row["connected"] = self.observers.total("connected")
        row["processes"] = self.meter.sample()
        row["outstanding"] = m.outstanding
        self.run.timeline.append(row)
        self.run.progress.tick(row, self.producer.meter.schedule_lag_us)
        return now
