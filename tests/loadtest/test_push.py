"""The push stage: PUBLISHed messages in each server's own wire format reach every client once,
against the notifier's gateway and both Socket.IO baselines (python-socketio, Node) alike."""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
import orjson
import pytest
import socketio
from redis.asyncio import Redis

from feeds import changelog
from loadtest.compare import compare_table
from loadtest.ledger import Ledger
from loadtest.protocols import NotifierProtocol
from loadtest.publisher import (
    TICK_S,
    NotifierWire,
    Publisher,
    PublishPlan,
    SocketIONodeWire,
    SocketIOWire,
    pubsub_source,
)
from loadtest.runner import run_scenario
from loadtest.scenarios import preset
from schemas import keys, protocol
from schemas.cursor import Cursor


class _Captured(socketio.AsyncRedisManager):  # type: ignore[misc]
    """A write-only manager that keeps what it would publish."""

    def __init__(self) -> None:
        super().__init__("redis://127.0.0.1:1/0", write_only=True)
        self.published: list[dict[str, Any]] = []

    async def _publish(self, data: dict[str, Any]) -> None:
        self.published.append(data)


@pytest.mark.anyio
async def test_socketio_messages_are_what_the_manager_publishes() -> None:
    manager, wire = _Captured(), SocketIOWire()
    channel, data = wire.message(7, "lt1.7", "u3", 1_000)
    body = orjson.loads(data)
    await manager.emit("change", body["data"][0], room="u3", namespace="/")
    assert channel == manager.channel
    assert body == {**manager.published[0], "host_id": wire.host_id}


def test_node_messages_are_what_the_redis_adapter_publishes() -> None:
    """@socket.io/redis-adapter's `broadcast()` for `io.to("u3").emit("change", data)`: the
    room's channel, msgpack [uid, packet, opts] (the e2e test below has Node deliver them)."""
    wire = SocketIONodeWire()
    channel, data = wire.message(7, "lt1.7", "u3", 1_000)
    uid, packet, opts = msgspec.msgpack.decode(data)
    assert channel == "socket.io#/#u3#" and uid == wire.uid
    assert packet["type"] == 2 and packet["nsp"] == "/" and packet["data"][0] == "change"
    assert packet["data"][1]["event"] == "lt1.7"
    assert opts == {"rooms": ["u3"], "except": [], "flags": {}}


def test_notifier_messages_read_as_the_gateway_and_the_clients_read_them() -> None:
    channel, data = NotifierWire("lt1").message(42, "lt1.42", "u5", 1_795_675_004_000)
    assert keys.user_of_channel(channel) == "u5"
    change = changelog.published(data.decode())  # as gateway/hub.py reads it
    assert change.cursor == Cursor("lt1", 43, 1) and change.accepted_ms == "1795675004000"
    frame = NotifierProtocol().parse(protocol.change(str(change.cursor), change.payload))
    assert (frame.event, frame.cursor, frame.note) == ("lt1.42", str(change.cursor), None)


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_redis_server")
def test_push_reaches_every_client_once_on_both_servers() -> None:
    scenario = preset("push").with_overrides(
        {"clients": 40, "rate": 1_500.0, "duration_s": 2.0, "drain_s": 15.0}
    )
    ours = run_scenario(scenario, progress=False, source=pubsub_source)
    theirs = {
        kind: run_scenario(scenario, kind=kind, progress=False, source=pubsub_source)
        for kind in ("socketio", "socketio-node")
    }

    for result in (ours, *theirs.values()):
        ledger, events = result["ledger"], result["throughput"]["events"]
        assert events == {"accepted": 3_000}
        assert ledger["expected"] == 3_000 and ledger["reach"] == 1.0
        assert (ledger["lost"], ledger["duplicated"], ledger["unexpected"]) == (0, 0, 0)
        assert result["throughput"]["delivered_nps"] > 1_000
        latency = result["latency_ms"]["send_to_receive"]
        assert latency["count"] == 3_000 and 0 < latency["p50"] <= latency["p99"]
        assert result["processes"]["gateway"]["cpu_s"] > 0
        assert result["notes"] == []
    assert ours["memory"] == {}  # nothing is stored on this path
    assert ours["clients"]["counts"] == {}  # no refetch, no reconnect: every cursor was accepted
    table = compare_table(ours, theirs)
    assert "| reach | 1.000 | 1.000 | 1.00 | 1.000 | 1.00 |" in table
    assert "gateway CPU s per 1k notifications" in table


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_the_publisher_sends_what_is_due_once_a_tick_in_order(redis_url: str, redis: Redis) -> None:
    """On schedule, one round trip a tick carries every message due (a round trip for each
    message or two costs more CPU than the messages); every message is published once, and
    each user's in order."""
    users, rate, duration_s = 20, 20_000.0, 0.5
    plan = PublishPlan(
        redis_url=redis_url,
        wire=NotifierWire("lt1"),
        users=tuple(range(users)),
        names=tuple(f"lt1-{u}" for u in range(users)),
        run_id="lt1",
        rate=rate,
        total=int(rate * duration_s),
    )
    ledger, seen = Ledger(), {name: list[int]() for name in plan.names}
    pubsub = redis.pubsub()
    await pubsub.psubscribe(keys.user_channel("lt1-*"))
    publisher = Publisher(plan, ledger)
    try:
        with anyio.fail_after(30):
            await publisher.run(time.time_ns() + 100_000_000)
            assert publisher.meter.notes == []  # every message found our subscriber
            while sum(map(len, seen.values())) < plan.total:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None:  # the subscription's confirmation (fail_after bounds the rest)
                    continue
                change = changelog.published(message["data"].decode())
                seen[keys.user_of_channel(message["channel"].decode())].append(change.cursor.number)
    finally:
        publisher.close()
        await pubsub.aclose()

    assert [e.status for e in ledger.entries] == ["accepted"] * plan.total
    assert all(numbers == sorted(numbers) for numbers in seen.values())
    assert sorted(n for numbers in seen.values() for n in numbers) == list(range(1, plan.total + 1))
    round_trips = len({e.sent_ns for e in ledger.entries})
    assert round_trips <= 1.5 * duration_s / TICK_S  # ~10 messages each, not one or two
