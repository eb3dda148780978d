"""The push stage's source: each event is one message PUBLISHed straight on its recipient's
channel, in the format the fan-out's inbox script publishes (feeds/lua/common.lua `emit()`), so
the gateway (or the Socket.IO baseline's server) and the clients are all that is measured.

Open loop: event k is due at t0 + k/rate and goes to one online user (round robin over a
seeded shuffle, so every user gets the same share); what is due goes in one round trip a tick
(1 ms, or at once when behind), a script PUBLISHing every message of the batch, and the ledger
gets the send time, so latency runs from publish to receipt. One process publishes, so each
user's messages leave in order, as the gateway requires. About 4 µs of CPU a message at
40,000/s; a pipeline of PUBLISHes sent as soon as anything was due cost 16 (each round trip
outlasted the gap between messages, so a batch held ~5, and redis-py builds and parses every
command of a pipeline: 6.0 µs a message at 40 a batch against the script's 3.4)."""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Final, Protocol

import anyio
import msgspec
import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from schemas import keys

from .clients import wait_readable
from .graph import SocialGraph, user_id
from .ledger import Ledger, Status
from .producers import ACTORS, Meter, Source
from .scenarios import Scenario
from .stack import Target

BATCH_MAX: Final = 1_000  # messages per round trip when behind schedule
TICK_S: Final = 0.001  # on schedule, one round trip a tick (40 messages at 40,000/s)
# ARGV: channel, message, channel, message...; returns how many found no subscriber
PUBLISH_ALL: Final = """
local unheard = 0
for i = 1, #ARGV, 2 do
    if redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) == 0 then unheard = unheard + 1 end
end
return unheard
"""
REPORT_S: Final = 0.2  # the publisher process reports what it sent this often
SOCKETIO_CHANNEL: Final = "socketio"  # AsyncRedisManager's default channel


def change_of(event: str, actor: str, at_ms: int) -> dict[str, Any]:
    """The change the inbox script emits for a new comment group (common.lua `group_view`):
    `comment:EVENT` is the group id the observers read the event's seq from."""
    group = {
        "id": f"comment:{event}",
        "verb": "comment",
        "count": 1,
        "actors": [actor],
        "first_at": at_ms,
        "last_at": at_ms,
        "read": False,
        "post": event,
        "comment": event,
    }
    return {"op": "upsert", "group": group, "unread": 1}


class Wire(Protocol):
    def message(self, seq: int, event: str, user: str, at_ms: int) -> tuple[str, bytes]:
        """(channel, data) of event `event` (the ledger's seq `seq`) for `user`."""


class NotifierWire:
    """`EPOCH N CHECK@MS PAYLOAD` on `push:{u:ID}`, as lua/common.lua publishes a change (read by
    feeds.changelog.published; `@MS`, the event's time here, stands for its acceptance time: the
    gateway's push latency). Numbers N grow with the seq, as a change log's do: the session skips
    a live change at or before its cursor. No change log exists for these users, so their
    sessions start at epoch `-` and take any epoch; the run's id serves as one."""

    def __init__(self, epoch: str) -> None:
        self.epoch = epoch

    def message(self, seq: int, event: str, user: str, at_ms: int) -> tuple[str, bytes]:
        payload = orjson.dumps(change_of(event, f"a{seq % ACTORS}", at_ms))
        return keys.user_channel(user), f"{self.epoch} {seq + 1} 1@{at_ms} ".encode() + payload


class SocketIOWire:
    """What `socketio.AsyncRedisManager.emit("change", data, room=user)` publishes (see
    socketio/async_pubsub_manager.py; tests/loadtest/test_push.py holds the two equal), with
    the baseline's data (`{"event": ID}`, as loadtest/baseline_socketio.py emits) plus the same
    change, so both servers relay messages of about the same size."""

    def __init__(self) -> None:
        self.host_id = uuid.uuid4().hex  # a writer of our own: every server handles our emits

    def envelope(self, data: dict[str, Any], room: str) -> dict[str, Any]:
        return {
            "method": "emit",
            "event": "change",
            "data": [data],
            "binary": False,
            "namespace": "/",
            "room": room,
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
        }

    def message(self, seq: int, event: str, user: str, at_ms: int) -> tuple[str, bytes]:
        data = {"event": event, "change": change_of(event, f"a{seq % ACTORS}", at_ms)}
        return SOCKETIO_CHANNEL, orjson.dumps(self.envelope(data, user))


class SocketIONodeWire:
    """What another node's `@socket.io/redis-adapter` publishes for `io.to(user).emit("change",
    data)` (its dist/index.js `broadcast()`): msgpack `[uid, packet, opts]` on the room's channel
    `socket.io#/#ROOM#`, with the same data as SocketIOWire's."""

    def __init__(self) -> None:
        self.uid = uuid.uuid4().hex[:6]  # the adapter skips only its own uid

    def message(self, seq: int, event: str, user: str, at_ms: int) -> tuple[str, bytes]:
        data = {"event": event, "change": change_of(event, f"a{seq % ACTORS}", at_ms)}
        packet = {"type": 2, "data": ["change", data], "nsp": "/"}  # socket.io-parser EVENT
        opts = {"rooms": [user], "except": [], "flags": {}}
        return f"socket.io#/#{user}#", msgspec.msgpack.encode([self.uid, packet, opts])


def wire_for(kind: str, run_id: str) -> Wire:
    if kind == "notifier":
        return NotifierWire(run_id)
    if kind == "socketio":
        return SocketIOWire()
    if kind == "socketio-node":
        return SocketIONodeWire()
    raise ValueError(f"no push wire for {kind!r}")


def pubsub_source(
    scenario: Scenario, graph: SocialGraph, ledger: Ledger, target: Target, run_id: str
) -> Source:
    if target.redis_url is None:
        raise ValueError("the push stage publishes into the target's Redis: give --redis-url")
    wire = wire_for(target.kind, run_id)
    order = list(graph.online)
    random.Random(scenario.seed).shuffle(order)
    plan = PublishPlan(
        redis_url=target.redis_url,
        wire=wire,
        users=tuple(order),
        names=tuple(user_id(u) for u in order),
        run_id=run_id,
        rate=scenario.rate,
        total=int(scenario.duration_s * scenario.rate),
    )
    return Publisher(plan, ledger)


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """What the publisher process sends (picklable): event k goes to `users[k % len(users)]`
    (named `names[...]` on the wire) at t0 + k/rate."""

    redis_url: str
    wire: Wire
    users: tuple[int, ...]
    names: tuple[str, ...]
    run_id: str
    rate: float
    total: int

    def scheduled_ns(self, t0_ns: int, k: int) -> int:
        return t0_ns + int(k * 1e9 / self.rate)


Batch = tuple[int, int, int, int, int, str]  # first seq, end seq, sent ns, acked ns, unheard, error


class Publisher:
    """Implements producers.Source: a process of its own publishes (the run's own process
    folds the clients' receipts in bursts, which would make the sending bursty too); this
    side keeps the ledger from the batches it reports."""

    def __init__(self, plan: PublishPlan, ledger: Ledger) -> None:
        self.plan = plan
        self.ledger = ledger
        self.meter = Meter()
        self._unheard = 0
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=publish_process, args=(plan, child), daemon=True)
        self._process.start()  # now, so it is connected to Redis long before t0
        child.close()

    async def run(self, t0_ns: int) -> None:
        self._conn.send(("start", t0_ns))
        while True:
            with anyio.move_on_after(REPORT_S):
                await wait_readable(self._conn)
            elapsed_s = (time.time_ns() - t0_ns) / 1e9
            self._extend(t0_ns, min(self.plan.total, max(0, int(elapsed_s * self.plan.rate) + 1)))
            while self._conn.poll():
                try:
                    message = self._conn.recv()
                except EOFError:
                    raise RuntimeError("the publisher process died") from None
                if message[0] == "done":
                    self._finish()
                    return
                for batch in message[1]:
                    self._settle(t0_ns, batch)

    @property
    def pids(self) -> list[int]:
        return [self._process.pid] if self._process.pid is not None else []

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)
        self._conn.close()

    def _extend(self, t0_ns: int, events: int) -> None:
        """Ledger entries for the first `events` events (those due, so receipts find them)."""
        users = self.plan.users
        for k in range(len(self.ledger.entries), events):
            self.ledger.add((users[k % len(users)],), self.plan.scheduled_ns(t0_ns, k))
        self.meter.offered = len(self.ledger.entries)

    def _settle(self, t0_ns: int, batch: Batch) -> None:
        first, end, sent_ns, acked_ns, unheard, error = batch
        self._extend(t0_ns, end)
        status: Status = "error" if error else "accepted"  # an error: it may or may not have gone out
        self.meter.sent += end - first
        self.meter.count(status, end - first)
        self.meter.rtt_us.record_value(max(1, (acked_ns - sent_ns) // 1000), end - first)
        lag = self.meter.schedule_lag_us
        for entry in self.ledger.entries[first:end]:
            entry.sent_ns, entry.acked_ns, entry.status = sent_ns, acked_ns, status
            lag.record_value(max(1, (sent_ns - entry.scheduled_ns) // 1000))
        self._unheard += unheard
        if error and len(self.meter.notes) < 10:
            self.meter.notes.append(f"publishing events {first}..{end - 1} failed: {error}")

    def _finish(self) -> None:
        if self._unheard:
            self.meter.notes.append(f"{self._unheard} messages were published with no subscriber")


def publish_process(plan: PublishPlan, conn: Connection) -> None:
    """Entry point of the publisher process (spawned)."""
    anyio.run(_publish, plan, conn, backend="asyncio", backend_options={"use_uvloop": True})


async def _publish(plan: PublishPlan, conn: Connection) -> None:
    redis = Redis.from_url(plan.redis_url, socket_timeout=10)
    try:
        publish_all = redis.register_script(PUBLISH_ALL)
        await redis.script_load(PUBLISH_ALL)  # connected, and every batch is one EVALSHA
        await wait_readable(conn)
        try:
            _, t0_ns = conn.recv()  # ("start", t0_ns)
        except EOFError:  # the run ended before it started
            return
        period_ns = 1e9 / plan.rate
        batches: list[Batch] = []
        reported = time.monotonic()
        k = 0
        while k < plan.total:
            elapsed_ns = time.time_ns() - t0_ns  # small numbers: floats near 1e18 are 256 ns coarse
            due = min(plan.total, int(elapsed_ns // period_ns) + 1)  # scheduled at or before now
            if due <= k:
                await anyio.sleep(max(0.0, (k * period_ns - elapsed_ns) / 1e9))
                continue
            stop = min(due, k + BATCH_MAX)
            batches.append(await _publish_batch(publish_all, plan, t0_ns, range(k, stop)))
            k = stop
            if stop == due:  # on schedule: let a tick's worth come due
                await anyio.sleep(TICK_S)
            if time.monotonic() - reported >= REPORT_S:
                conn.send(("sent", batches))
                batches, reported = [], time.monotonic()
        conn.send(("sent", batches))
        conn.send(("done",))
    finally:
        await redis.aclose()


async def _publish_batch(publish_all: AsyncScript, plan: PublishPlan, t0_ns: int, seqs: range) -> Batch:
    """One round trip PUBLISHing events `seqs`."""
    names, wire = plan.names, plan.wire
    args: list[str | bytes] = []
    for k in seqs:
        at_ms = plan.scheduled_ns(t0_ns, k) // 1_000_000
        args += wire.message(k, f"{plan.run_id}.{k}", names[k % len(names)], at_ms)
    sent_ns = time.time_ns()
    try:
        unheard = int(await publish_all(args=args))
    except (RedisError, OSError) as exc:
        return seqs.start, seqs.stop, sent_ns, time.time_ns(), 0, f"{type(exc).__name__}: {exc}"
    return seqs.start, seqs.stop, sent_ns, time.time_ns(), unheard, ""
