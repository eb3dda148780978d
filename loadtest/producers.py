"""Event producers. Open loop (latency): requests go out at scheduled times whatever the
responses do, and the wait for a free connection is recorded as schedule lag. Closed loop
(capacity): `concurrency` requests always in flight. Every event gets a unique id and a ledger entry."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from hdrh.histogram import HdrHistogram

from .graph import SocialGraph, user_id
from .http import HttpConnection, HttpError
from .ledger import Ledger, Sent, Status
from .metrics import new_histogram
from .scenarios import Scenario
from .stack import Target

REQUEST_TIMEOUT_S: Final = 10.0
ACTORS: Final = 1_000_000  # actors take turns: none acts often enough to look like spam
MAX_OUTSTANDING: Final = 20_000  # open loop: requests waiting for a connection before we skip


@dataclass(slots=True)
class Meter:
    """Running totals the progress line and the timeline read."""

    offered: int = 0  # events whose time came (open loop) or that were built (closed loop)
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)  # HTTP status → requests
    rtt_us: HdrHistogram = field(default_factory=new_histogram)
    schedule_lag_us: HdrHistogram = field(default_factory=new_histogram)
    outstanding: int = 0
    notes: list[str] = field(default_factory=list)  # anything odd the run's report should name

    def count(self, status: str, n: int = 1) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + n


class Source(Protocol):
    """What a run drives: from `t0_ns` on, it sends the scenario's events, each first added to
    the ledger (its seq names it on the wire) and settled with a status once answered."""

    meter: Meter
    ledger: Ledger

    @property
    def pids(self) -> list[int]:
        """Processes of its own (their CPU counts as the generator's)."""

    async def run(self, t0_ns: int) -> None: ...

    def close(self) -> None:
        """Release whatever it holds, whether or not it ran."""


SourceFactory = Callable[[Scenario, SocialGraph, Ledger, Target, str], Source]


def http_source(
    scenario: Scenario, graph: SocialGraph, ledger: Ledger, target: Target, run_id: str
) -> Source:
    """POSTs to the API (the whole pipeline)."""
    return Producer(
        scenario, graph, ledger, api_urls=target.api_urls, service_key=target.service_key, run_id=run_id
    )


class Producer:
    """Implements Source over HTTP: open or closed loop (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        graph: SocialGraph,
        ledger: Ledger,
        *,
        api_urls: Sequence[str],
        service_key: str,
        run_id: str,
    ) -> None:
        self.scenario = scenario
        self.graph = graph
        self.ledger = ledger
        self.run_id = run_id
        self.meter = Meter()
        headers = {"Authorization": f"Bearer {service_key}", "Content-Type": "application/json"}
        urls = itertools.cycle(api_urls)
        self._connections = [HttpConnection(next(urls), headers) for _ in range(scenario.concurrency)]
        self._pool_in: MemoryObjectSendStream[HttpConnection]
        self._pool: MemoryObjectReceiveStream[HttpConnection]
        self._pool_in, self._pool = anyio.create_memory_object_stream[HttpConnection](len(self._connections))
        for c in self._connections:
            self._pool_in.send_nowait(c)

    async def run(self, t0_ns: int) -> None:
        try:
            if self.scenario.rate > 0:
                await self._open_loop(t0_ns)
            else:
                await self._closed_loop(t0_ns)
        finally:
            for c in self._connections:
                await c.aclose()
            self._pool_in.close()
            self._pool.close()

    @property
    def pids(self) -> list[int]:
        return []

    def close(self) -> None:
        pass  # run() closes its connections

    # -- event building ------------------------------------------------------------------

    def _event(self, scheduled_ns: int) -> tuple[Sent, dict[str, Any]]:
        graph, k = self.graph, self.scenario.fanout
        recipients = graph.recipients(k)
        sent = self.ledger.add(tuple(r for r in recipients if graph.is_online(r)), scheduled_ns)
        ident = f"{self.run_id}.{sent.seq}"
        at = datetime.fromtimestamp(scheduled_ns / 1e9, UTC).isoformat()
        actor = f"a{sent.seq % ACTORS}"  # not a user id: never one of the recipients
        # no text: moderation screens texts (leetspeak folding could turn digits into a listed
        # word), and a held event would look lost; the ids alone identify every notification
        body: dict[str, Any] = {"id": ident, "actor": actor, "occurred_at": at}
        if k == 1:  # a comment is its own group: comment:ID, one per event
            body |= {"type": "comment", "post": ident, "owner": user_id(recipients[0]), "comment": ident}
        else:  # a mention of a fresh post is one group per recipient: mention:ID~ACTOR
            body |= {"type": "mention", "post": ident, "users": [user_id(r) for r in recipients]}
        return sent, body

    def _batch(self, scheduled_ns: int) -> tuple[list[Sent], bytes]:
        events = [self._event(scheduled_ns) for _ in range(self.scenario.batch)]
        self.meter.offered += len(events)
        bodies = [body for _, body in events]
        payload = orjson.dumps(bodies if self.scenario.batch > 1 else bodies[0])
        return [sent for sent, _ in events], payload

    # -- sending -------------------------------------------------------------------------

    async def _post(self, entries: list[Sent], payload: bytes, scheduled_ns: int) -> None:
        self.meter.outstanding += 1
        try:
            connection = await self._pool.receive()
        finally:
            self.meter.outstanding -= 1
        try:
            sent_ns = time.time_ns()
            self.meter.schedule_lag_us.record_value(max(1, (sent_ns - scheduled_ns) // 1000))
            self.meter.sent += len(entries)
            for e in entries:
                e.sent_ns = sent_ns
            status, reply = 0, b""
            with anyio.move_on_after(REQUEST_TIMEOUT_S):
                try:
                    status, reply = await connection.request("POST", "/v1/events", payload)
                except HttpError:
                    status = 0
            acked_ns = time.time_ns()
            if status == 0:
                await connection.aclose()  # timed out mid-reply: start clean
        finally:
            self._pool_in.send_nowait(connection)
        self.meter.rtt_us.record_value(max(1, (acked_ns - sent_ns) // 1000))
        self.meter.http[str(status)] = self.meter.http.get(str(status), 0) + 1
        self._settle(entries, status, reply, acked_ns)

    def _settle(self, entries: list[Sent], status: int, reply: bytes, acked_ns: int) -> None:
        verdicts: list[Status]
        if status == 202:
            results = orjson.loads(reply)["results"]
            verdicts = [r["status"] for r in results]
        elif status in (429, 503):
            verdicts = ["refused"] * len(entries)
        elif 400 <= status < 500:
            verdicts = ["rejected"] * len(entries)
        else:  # no answer or a 5xx: the events may or may not be in the log
            verdicts = ["error"] * len(entries)
        for entry, verdict in zip(entries, verdicts, strict=True):
            entry.status = verdict
            entry.acked_ns = acked_ns
            self.meter.count(verdict)

    async def _open_loop(self, t0_ns: int) -> None:
        s = self.scenario
        elapsed = 0.0
        async with anyio.create_task_group() as tg:
            while elapsed < s.duration_s:
                due_ns = t0_ns + int(elapsed * 1e9)
                wait_s = (due_ns - time.time_ns()) / 1e9
                if wait_s > 0:
                    await anyio.sleep(wait_s)
                entries, payload = self._batch(due_ns)
                if self.meter.outstanding >= MAX_OUTSTANDING:
                    for e in entries:
                        e.status = "skipped"
                    self.meter.count("skipped", len(entries))
                else:
                    tg.start_soon(self._post, entries, payload, due_ns)
                rate = s.rate + (s.ramp_to - s.rate) * elapsed / s.duration_s if s.ramp_to else s.rate
                elapsed += s.batch / rate

    async def _closed_loop(self, t0_ns: int) -> None:
        stop_ns = t0_ns + int(self.scenario.duration_s * 1e9)

        async def lane() -> None:
            while (now := time.time_ns()) < stop_ns:
                entries, payload = self._batch(now)
                await self._post(entries, payload, now)

        async with anyio.create_task_group() as tg:
            for _ in range(self.scenario.concurrency):
                tg.start_soon(lane)

    def offered_rate(self, elapsed_s: float) -> float:
        s = self.scenario
        if s.rate == 0:
            return 0.0
        if not s.ramp_to:
            return s.rate
        return s.rate + (s.ramp_to - s.rate) * min(1.0, elapsed_s / s.duration_s)
