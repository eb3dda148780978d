"""Named workload presets at full size (the issue's targets); every knob can be overridden."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Literal

Stage = Literal["pipeline", "ingest", "fanout", "push", "homefeed"]
STAGES: Final[tuple[Stage, ...]] = ("pipeline", "ingest", "fanout", "push", "homefeed")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One bounded run. `rate` > 0 is open loop (events sent at scheduled times whatever the
    latency); `rate` 0 is closed loop (`concurrency` requests kept in flight, for capacity).

    `stage` is what the run measures: the whole `pipeline` (api → stream → worker → inbox →
    pub/sub → gateway → clients), or one stage alone: `ingest` (the API; no worker, no
    clients), `fanout` (one worker draining a preloaded log) or `push` (the gateway, fed by
    PUBLISHes as the worker's Lua would send them)."""

    name: str
    description: str
    stage: Stage = "pipeline"
    clients: int = 2_000  # online WebSocket clients (one user each)
    users: int = 0  # users in the graph; 0 means as many as clients (everyone online)
    rate: float = 1_000.0  # events/s offered; 0 = closed loop
    ramp_to: float = 0.0  # > 0: the offered rate grows linearly from `rate` to this
    duration_s: float = 60.0  # producing time; then a bounded drain
    fanout: int = 10  # recipients per event: 1 = comment to the post owner, >1 = mention (≤ 50)
    batch: int = 10  # events per POST (1 = single-event POSTs)
    concurrency: int = 64  # connections to the API; closed loop keeps this many requests in flight
    skew: float = 0.5  # Zipf exponent of follower counts (0 = uniform)
    storm_every_s: float = 0.0  # > 0: every so often `storm_fraction` of clients drop and resume
    storm_fraction: float = 0.5
    storm_jitter_s: float = 1.0  # reconnects are spread over this long
    drain_s: float = 60.0  # after producing, wait at most this long for every delivery
    events: int = 0  # fanout: events preloaded into the log before the worker starts
    seed: int = 1
    partitions: int = 4
    apis: int = 1  # API processes of the local stack
    workers: int = 1  # fan-out worker processes
    gateways: int = 1  # gateway processes
    masters: int = 0  # 0: one redis-server; N: a local Redis Cluster of N masters (pipeline stage)
    client_procs: int = 0  # 0 = one process per 2,500 clients
    connect_concurrency: int = 200  # handshakes in flight per client process
    redis_cpus: str = ""  # fanout: the redis-server runs on these CPUs only (a `taskset -c` list)
    worker_cpus: str = ""  # fanout: the worker runs on these CPUs only

    @property
    def user_count(self) -> int:
        return self.users or max(self.clients, self.fanout + 1)

    def with_overrides(self, overrides: dict[str, Any]) -> Scenario:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def problems(self) -> list[str]:
        out = []
        if not 1 <= self.fanout <= 50:
            out.append("fanout must be 1..50 (a mention names at most 50 users)")
        if not 1 <= self.batch <= 500:
            out.append("batch must be 1..500 (the API's limit)")
        if self.fanout >= self.user_count:
            out.append("fanout must be below the number of users")
        if self.clients > self.user_count:
            out.append("clients cannot exceed users")
        if self.duration_s <= 0 or self.rate < 0:
            out.append("duration must be positive and rate non-negative")
        if self.stage not in STAGES:
            out.append(f"stage must be one of {', '.join(STAGES)}")
        if self.stage == "push" and (self.fanout != 1 or self.rate <= 0 or self.ramp_to or self.clients < 1):
            out.append("push publishes one message per event to one online user at a fixed rate > 0")
        if self.stage == "fanout" and self.events < 1:
            out.append("fanout needs events to preload")
        if self.masters and self.stage != "pipeline":
            out.append("a cluster (masters > 0) runs the pipeline stage only (clusterbench measures fan-out)")
        if self.masters < 0:
            out.append("masters must be 0 (one Redis) or more")
        if (self.redis_cpus or self.worker_cpus) and self.stage != "fanout":
            out.append("redis_cpus and worker_cpus pin the fanout stage's processes only")
        if self.stage == "ingest" and self.rate:
            out.append("ingest is a closed loop (rate 0)")
        return out


PRESETS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario(
            "steady",
            "End-to-end latency: 1,000 events/s x 10 recipients, 2,000 online clients, open loop.",
        ),
        Scenario(
            "ramp",
            "Push with 2,000 clients: the offered rate climbs from 100 to 3,000 events/s x 10 "
            "recipients; where latency bends is the capacity.",
            rate=100.0,
            ramp_to=3_000.0,
            duration_s=120.0,
        ),
        Scenario(
            "connections",
            "10,000 idle connections with a trickle of traffic (20 events/s x 10): connect time, "
            "gateway memory per connection, latency on a crowded gateway.",
            clients=10_000,
            rate=20.0,
            batch=1,
            connect_concurrency=100,
        ),
        Scenario(
            "celebrity",
            "Skewed recipients: mentions of 50 users drawn from a steep power law, so a few users "
            "get most notifications (hot inbox, hot socket).",
            rate=200.0,
            fanout=50,
            skew=1.1,
        ),
        Scenario(
            "reconnect",
            "Reconnect storm: every 15 s half the clients drop at once and resume from their "
            "cursor within 1 s, under 200 events/s x 10; nothing may be lost or doubled.",
            rate=200.0,
            storm_every_s=15.0,
        ),
        Scenario(
            "burst",
            "Capacity: closed loop, 100 events per POST, for 20 s; then the backlog drains. "
            "Gives ingest events/s, fan-out worker throughput and Redis bytes per notification. "
            "`--batch 1 --concurrency 128` measures single-event POSTs.",
            users=20_000,
            rate=0.0,
            duration_s=20.0,
            batch=100,
            concurrency=8,
            drain_s=600.0,
        ),
        Scenario(
            "ingest",
            "Ingest alone: closed loop against one API process (no worker, no clients; the "
            "backpressure threshold raised so it never answers 503), then the identical load "
            "against an API whose event-log append is stubbed out; accepted events/s, request "
            "latency and their ratio. `--batch 1` for single-event POSTs (default concurrency: "
            "8 requests in flight for batches, 64 for single events).",
            stage="ingest",
            clients=0,
            users=20_000,
            rate=0.0,
            duration_s=20.0,
            fanout=1,
            batch=100,
            concurrency=0,
            workers=0,
            gateways=0,
        ),
        Scenario(
            "fanout",
            "Fan-out alone: 200,000 events (likes of a few posts per owner, follows, comments; "
            "one recipient each; `--events`) preloaded into the event log, then one worker "
            "started; applied events/s until every partition's lag and pending are 0, and the "
            "inboxes checked.",
            stage="fanout",
            clients=0,
            events=200_000,
            fanout=1,
            apis=0,
            workers=1,
            gateways=0,
            drain_s=600.0,
        ),
        Scenario(
            "push",
            "Push alone: 2,000 clients on one gateway, fed by PUBLISHes on each recipient's channel "
            "in the worker's wire format at 25,000 messages/s (one message per event to one user), "
            "open loop; delivered/s and publish→receive latency.",
            stage="push",
            rate=25_000.0,
            duration_s=30.0,
            fanout=1,
            batch=1,
            apis=0,
            workers=0,
            drain_s=30.0,
        ),
    )
}


# `--feed`: a preset's home-feed mode (issue 16), its description and its knobs over the preset's
FEED_MODES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "celebrity": (
        "Home feed: an author with `users` followers posting `events` times during a steady "
        "background (`rate` likes/s to `clients` owners), pushed at write time (threshold above "
        "`users`) and read-merged (one more follower than the threshold); background p99 alone "
        "and with each, time to the last pushed and the first read-merged follower; then "
        "`clients` readers' feed reads, each merging `fanout` celebrities' timelines.",
        {
            "stage": "homefeed",
            "users": 100_000,
            "clients": 200,
            "rate": 200.0,
            "duration_s": 20.0,
            "events": 5,
            "fanout": 50,
            "apis": 0,
            "gateways": 0,
            "drain_s": 120.0,
        },
    ),
}


def preset(name: str, *, feed: bool = False) -> Scenario:
    """The preset `name`, or with `feed` its home-feed mode."""
    try:
        scenario = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(PRESETS)}") from None
    if not feed:
        return scenario
    if name not in FEED_MODES:
        raise ValueError(f"{name!r} has no home-feed mode (--feed); {', '.join(FEED_MODES)} has")
    description, knobs = FEED_MODES[name]
    return dataclasses.replace(scenario, description=description, **knobs)
