"""The parent's side of the client processes: spawn them, follow their reports, stop them and
collect what they received."""

from __future__ import annotations

import multiprocessing
import os
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final

import anyio
from hdrh.histogram import HdrHistogram

from .clients import ClientPlan, client_process, wait_readable
from .graph import SocialGraph
from .ledger import Ledger, Receipts
from .metrics import decoded, new_histogram
from .scenarios import Scenario
from .stack import Target

CLIENTS_PER_PROCESS: Final = 2_500
FRAMES_PER_PROCESS: Final = 5_000  # change frames/s one client process parses comfortably


def _processes_for(scenario: Scenario, clients: int) -> int:
    """Enough for the connections, and for the frame rate, up to one per core."""
    frames = max(scenario.rate, scenario.ramp_to) * scenario.fanout * clients / scenario.user_count
    by_frames = min(-(-int(frames) // FRAMES_PER_PROCESS), os.cpu_count() or 1)
    return max(1, -(-clients // CLIENTS_PER_PROCESS), by_frames)


@dataclass(slots=True)
class Child:
    process: BaseProcess
    conn: Connection
    ready: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    done: bool = False


@dataclass(slots=True)
class Observers:
    """Client processes and the latest of what each reported."""

    children: list[Child] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)  # to turn receipts into live latency
    live: HdrHistogram = field(default_factory=new_histogram)  # send→receive µs since take_live()
    receipts: Receipts = field(default_factory=Receipts)
    connect_us: HdrHistogram = field(default_factory=new_histogram)
    counts: Counter[str] = field(default_factory=Counter)
    unseen: set[int] = field(default_factory=set)  # users whose changes were not seen whole (clients.Box)
    failures: list[str] = field(default_factory=list)
    finished: anyio.Event = field(default_factory=anyio.Event)  # every child is done

    @classmethod
    def spawn(
        cls, scenario: Scenario, graph: SocialGraph, target: Target, run_id: str, ledger: Ledger
    ) -> Observers:
        online = graph.online
        procs = scenario.client_procs or _processes_for(scenario, len(online))
        procs = min(procs, max(1, len(online)))
        context = multiprocessing.get_context("spawn")
        observers = cls(ledger=ledger)
        for i in range(procs):
            plan = ClientPlan(
                proc=i,
                users=tuple(online[i::procs]),
                urls=target.gateway_urls,
                protocol=target.kind,
                auth=target.auth,
                run_id=run_id,
                connect_concurrency=scenario.connect_concurrency,
                storm_every_s=scenario.storm_every_s,
                storm_fraction=scenario.storm_fraction,
                storm_jitter_s=scenario.storm_jitter_s,
                seed=scenario.seed,
            )
            parent, child = context.Pipe()
            process = context.Process(target=client_process, args=(plan, child), daemon=True)
            process.start()
            child.close()
            observers.children.append(Child(process, parent))
        return observers

    @property
    def pids(self) -> list[int]:
        return [c.process.pid for c in self.children if c.process.pid is not None]

    @property
    def ready(self) -> int:
        return sum(c.ready for c in self.children)

    def total(self, name: str) -> int:
        return sum(int(c.stats.get(name, 0)) for c in self.children)

    def take_live(self) -> HdrHistogram:
        live, self.live = self.live, new_histogram()
        return live

    async def follow(self, child: Child) -> None:
        """Read one child's reports until it is done (run as a task per child)."""
        while not child.done:
            await wait_readable(child.conn)
            try:
                message = child.conn.recv()
            except EOFError:
                self.failures.append(f"client process {child.process.pid} died")
                child.done = True
            else:
                self._handle(child, message)
        if all(c.done for c in self.children):
            self.finished.set()

    def _handle(self, child: Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            child.ready = message[2]
            child.stats = {"connected": message[2], **message[3]}
        elif kind == "stats":
            child.stats = message[2]
            self._receive(*message[3])
        elif kind == "done":
            self._receive(*message[3])
            self.connect_us.add(decoded(message[4]))
            self.counts.update(message[2]["counts"])
            self.unseen.update(message[2]["unseen"])
            child.done = True

    def _receive(self, users: bytes, seqs: bytes, times: bytes) -> None:
        part = Receipts(array("q", users), array("q", seqs), array("q", times))
        entries = self.ledger.entries
        for seq, at in zip(part.seqs, part.received_ns, strict=True):
            if 0 <= seq < len(entries) and entries[seq].sent_ns:
                self.live.record_value(max(1, (at - entries[seq].sent_ns) // 1000))
        self.receipts.extend(part)

    def start(self, t0_ns: int) -> None:
        for child in self.children:
            child.conn.send(("start", t0_ns))

    async def stop(self, timeout_s: float = 30.0) -> None:
        for child in self.children:
            if not child.done:
                child.conn.send(("stop",))
        with anyio.move_on_after(timeout_s):
            await self.finished.wait()
        for child in self.children:
            child.process.join(timeout=5)
            if child.process.is_alive():
                self.failures.append(f"client process {child.process.pid} did not stop")
        self.kill()

    def kill(self) -> None:
        """Whatever still runs (after an error, or a child that would not stop)."""
        for child in self.children:
            if child.process.is_alive():
                child.process.kill()
                child.process.join(timeout=5)
            child.conn.close()
