"""The `ingest` stage: one API process alone (no worker, no WebSocket clients), driven in a
closed loop by the usual producer, then the identical load against an API whose event-log
append is stubbed out (loadtest/stub_api.py), in the same run on the same stack: the ratio of
the two is the share of the API's throughput the Redis append leaves.

Without a worker there is no consumer group, so the API counts every logged entry as
backlog; the run raises NOTIFIER_INGEST_MAX_BACKLOG so the API never answers 503 for it."""

from __future__ import annotations

import dataclasses
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Final

import anyio
from redis.asyncio import Redis

from schemas import keys

from .graph import SocialGraph
from .ledger import Ledger
from .metrics import ProcessMeter, cpu_used, process_summary, summary_ms
from .producers import Producer
from .progress import Progress
from .report import fmt, latency_rows, resource_rows
from .scenarios import Scenario
from .stack import LocalStack, Target, private_stack

NO_BACKPRESSURE: Final = {"NOTIFIER_INGEST_MAX_BACKLOG": str(10**15)}
TICK_S: Final = 1.0
START_DELAY_NS: Final = 100_000_000


@dataclass(frozen=True, slots=True)
class Api:
    name: str  # in the result
    module: str  # `python -m MODULE api`
    role: str  # its process role in the stack


APIS: Final = (
    Api("notifier", "notifier", "api"),
    Api("append stubbed", "loadtest.stub_api", "stub-api"),
)


def concurrency_for(scenario: Scenario) -> int:
    """Requests in flight: given, or enough to keep one API process busy."""
    return scenario.concurrency or (64 if scenario.batch == 1 else 8)


def run(scenario: Scenario, *, extra_env: dict[str, str], progress: bool = True) -> dict[str, Any]:
    s = dataclasses.replace(scenario, concurrency=concurrency_for(scenario))
    env = NO_BACKPRESSURE | extra_env
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with private_stack("notifier", partitions=s.partitions, extra_env=env) as stack:
        urls = [stack.start_api(module=api.module, role=api.role) for api in APIS]
        measured = anyio.run(
            _measure, s, stack, urls, Progress(enabled=progress), backend_options={"use_uvloop": True}
        )
    phases, logged = measured
    ours, stubbed = (phases[api.name] for api in APIS)
    accepted = ours["events"].get("accepted", 0)
    notes = (
        [] if logged == accepted else [f"the event log holds {logged} entries but {accepted} were accepted"]
    )
    for name, phase in phases.items():
        others = {k: n for k, n in phase["requests"].items() if k != "202"}
        if others:
            notes.append(f"{name}: requests answered other than 202: {others}")
    return {
        "stage": "ingest",
        "scenario": asdict(s),
        "started_at": started,
        "stack_env": env,
        "phases": phases,
        "ratio": _ratio(ours["accepted_eps"], stubbed["accepted_eps"]),
        "cpu_ratio": _ratio(stubbed["api_cpu_us_per_event"], ours["api_cpu_us_per_event"]),
        "log_entries": logged,
        "notes": notes,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


async def _measure(
    s: Scenario, stack: LocalStack, urls: list[str], progress: Progress
) -> tuple[dict[str, dict[str, Any]], int]:
    phases = {}
    for api, url in zip(APIS, urls, strict=True):
        target = dataclasses.replace(stack.target(), api_urls=(url,))
        phases[api.name] = await _phase(s, target, api, progress)
    redis = Redis.from_url(stack.redis_url, socket_timeout=10)
    try:
        logged = sum([int(await redis.xlen(keys.events(p))) for p in range(s.partitions)])
    finally:
        await redis.aclose()
    return phases, logged


async def _phase(s: Scenario, target: Target, api: Api, progress: Progress) -> dict[str, Any]:
    """The closed loop against one API for the scenario's duration."""
    graph = SocialGraph(s.user_count, 0, s.skew, s.seed)  # the same events each phase
    ledger = Ledger()
    run_id = "lt" + secrets.token_hex(4)
    producer = Producer(
        s, graph, ledger, api_urls=target.api_urls, service_key=target.service_key, run_id=run_id
    )
    meter = ProcessMeter()
    for role, watched in (("api", api.role), ("redis", "redis")):
        for pid in target.pids[watched]:
            meter.watch(role, pid)
    meter.watch_self([])
    meter.sample()
    timeline: list[dict[str, Any]] = []
    t0_ns = time.time_ns() + START_DELAY_NS
    cpu_before = meter.cpu_seconds()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_sample, producer, meter, timeline, t0_ns, api.name, progress)
        await producer.run(t0_ns)
        tg.cancel_scope.cancel()
    seconds = (time.time_ns() - t0_ns) / 1e9
    cpu = cpu_used(cpu_before, meter.cpu_seconds())
    progress.done()
    statuses = ledger.counts()
    accepted = statuses["accepted"] + statuses["duplicate"]
    requests = sum(producer.meter.http.values())
    return {
        "api": api.name,
        "duration_s": round(seconds, 2),
        "accepted_eps": round(accepted / seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "api_cpu_us_per_event": round(cpu["api"] * 1e6 / accepted, 1) if accepted else None,
        "events": dict(statuses),
        "requests": dict(producer.meter.http),
        "latency_ms": {"request_round_trip": summary_ms(producer.meter.rtt_us)},
        "processes": process_summary(meter, timeline, cpu, seconds),
        "timeline": timeline,
    }


async def _sample(
    producer: Producer,
    meter: ProcessMeter,
    timeline: list[dict[str, Any]],
    t0_ns: int,
    name: str,
    progress: Progress,
) -> None:
    """Once a second: accepted events/s and every process's CPU."""
    last = 0
    tick = 1
    while True:
        await anyio.sleep(max(0.0, (t0_ns + tick * TICK_S * 1e9 - time.time_ns()) / 1e9))
        statuses = producer.meter.statuses
        accepted = statuses.get("accepted", 0) + statuses.get("duplicate", 0)
        row: dict[str, Any] = {
            "t": round((time.time_ns() - t0_ns) / 1e9, 2),
            "accepted_eps": (accepted - last) / TICK_S,
            "processes": meter.sample(),
        }
        timeline.append(row)
        last, tick = accepted, tick + 1
        cpu = " ".join(f"{role}={p['cpu_pct']:.0f}%" for role, p in row["processes"].items())
        progress.line(f"ingest {name}: t={row['t']:5.1f}s accepted={row['accepted_eps']:.0f}/s cpu {cpu}")


def passed(result: dict[str, Any]) -> bool:
    return not result["notes"]


def summary(result: dict[str, Any]) -> str:
    parts = []
    for name, phase in result["phases"].items():
        latency = phase["latency_ms"]["request_round_trip"]
        parts.append(
            f"{name}: accepted={phase['accepted_eps']}/s requests={phase['requests_per_s']}/s "
            f"p50={latency.get('p50')}ms p99={latency.get('p99')}ms "
            f"api cpu={phase['processes']['api']['cpu_pct']}% ({phase['api_cpu_us_per_event']} µs/event)"
        )
    return (
        "ingest "
        + "; ".join(parts)
        + f"; notifier ÷ stubbed = {result['ratio']} (by API CPU per event {result['cpu_ratio']})"
    )


def markdown(r: dict[str, Any]) -> str:
    s, phases = r["scenario"], r["phases"]
    lines = [
        f"# loadtest `ingest`: batch {s['batch']}, {s['concurrency']} requests in flight ({r['started_at']})",
        "",
        s["description"],
        "",
        f"Knobs: batch={s['batch']} concurrency={s['concurrency']} duration={s['duration_s']}s per API "
        f"partitions={s['partitions']} users={s['users']} seed={s['seed']}"
        + "".join(f" {k}={v}" for k, v in r["stack_env"].items()),
        "",
        "| API | accepted events/s | requests/s | request p50 ms | p99 ms | max ms | api cpu µs/event "
        "| api cpu % | redis cpu % | generator cpu % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in phases.items():
        latency, procs = p["latency_ms"]["request_round_trip"], p["processes"]
        cells = [p["accepted_eps"], p["requests_per_s"], latency.get("p50"), latency.get("p99")]
        cells += [latency.get("max"), p["api_cpu_us_per_event"]]
        cells += [procs.get(role, {}).get("cpu_pct") for role in ("api", "redis", "generator")]
        lines.append(f"| {name} | " + " | ".join(fmt(c) for c in cells) + " |")
    lines += [
        "",
        f"**notifier ÷ append stubbed = {fmt(r['ratio'])}** (accepted events/s; the same load, one "
        "after the other on the same stack). By the API's CPU per event (what the ratio would be "
        f"were the API the only thing short of CPU): {fmt(r['cpu_ratio'])}. The throughput ratio means "
        "what it says only while the API process is the bottleneck (api cpu near 100 %).",
        "",
        f"The event log holds {fmt(r['log_entries'])} entries "
        f"({fmt(phases['notifier']['events'].get('accepted', 0))} accepted by the notifier API).",
    ]
    for name, p in phases.items():
        lines += [
            "",
            f"## {name}",
            "",
            f"Events: {p['events']}. Requests by HTTP status: {p['requests']}.",
            "",
        ]
        lines += [*latency_rows(p["latency_ms"]), "", *resource_rows(p["processes"]), ""]
        lines += [
            "| t s | accepted ev/s | api cpu % | redis cpu % | generator cpu % |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in p["timeline"]:
            cpu = [row["processes"].get(role, {}).get("cpu_pct") for role in ("api", "redis", "generator")]
            lines.append("| " + " | ".join(fmt(c) for c in [row["t"], row["accepted_eps"], *cpu]) + " |")
    if r["notes"]:
        lines += ["", "Notes:", *[f"- {n}" for n in r["notes"]]]
    return "\n".join(lines) + "\n"
