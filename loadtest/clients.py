"""WebSocket observers: N clients spread over processes, each one user holding a socket, resuming
from its cursor after any close, and recording every change frame that names one of our events.

The clients must cost far less than the server they measure: each socket is an asyncio.Protocol
driving websockets' sans-I/O ClientProtocol (`Socket`), messages are handled in the read callback
(a burst of frames in one TCP read is one callback, with no task switch per message), and a
plain change frame is read by the protocol's fast path (loadtest/protocols.py `change()`)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Final

import anyio
import websockets
from anyio.abc import TaskGroup
from hdrh.histogram import HdrHistogram

from notifier.runtime import tokens
from notifier.runtime.settings import AuthSettings
from schemas.cursor import NO_EPOCH, Cursor

from .graph import user_id
from .ledger import Receipts
from .metrics import new_histogram
from .protocols import Frame, Protocol, protocol_for
from .wsclient import Socket

STATS_INTERVAL_S: Final = 1.0
_WS_ERRORS: Final = (OSError, TimeoutError, websockets.exceptions.WebSocketException)


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """What one client process runs (picklable: it crosses a process boundary)."""

    proc: int
    users: tuple[int, ...]
    urls: tuple[str, ...]
    protocol: str  # "notifier" or "socketio"
    auth: AuthSettings
    run_id: str
    connect_concurrency: int
    storm_every_s: float
    storm_fraction: float
    storm_jitter_s: float
    seed: int


@dataclass(slots=True)
class Box:
    """This process's shared state: what its sessions saw."""

    plan: ClientPlan
    receipts: Receipts = field(default_factory=Receipts)  # since the last report
    received: int = 0
    connect_us: HdrHistogram = field(default_factory=new_histogram)  # open→ready, every (re)connect
    counts: Counter[str] = field(default_factory=Counter)
    # users whose stream of changes was not seen whole (a number skipped, a refetch): a change
    # pushed to them may have gone unseen, so a pair of theirs not received proves nothing
    unseen: set[int] = field(default_factory=set)
    connected: int = 0
    stopping: bool = False


class Session:
    """One user's socket. A change frame moves the cursor; any close is followed by a reconnect
    that sends the cursor, so the gateway replays what was missed."""

    def __init__(self, user: int, url: str, token: str, box: Box, proto: Protocol) -> None:
        self.user = user
        self.url = url
        self.token = token
        self.box = box
        self.proto = proto
        self.cursor: str | None = None
        self.last: tuple[str, int] | None = None  # the epoch and number of the last change seen
        self.sock: Socket | None = None  # once ready: what a kick closes
        self.opened = 0.0  # perf_counter() when the current connection attempt began
        self.kicked = False
        self.ready = anyio.Event()

    async def run(self, gate: anyio.Semaphore) -> None:
        failures = 0
        while not self.box.stopping:
            try:
                async with gate:
                    self.opened = time.perf_counter()
                    hello = self.proto.hello(self.token, self.cursor)
                    sock = await Socket.open(self.proto.url(self.url), hello, self._received)
                failures = 0
                await sock.serve()
            except _WS_ERRORS as exc:
                # sockets cut while the run tears down (close handshakes timing out) are not failures
                prefix = "closing" if self.box.stopping else "error"
                self.box.counts[f"{prefix}:{type(exc).__name__}"] += 1
                failures += 1
            finally:
                if self.sock is not None:
                    self.box.connected -= 1
                    self.sock = None
            if self.box.stopping:
                return
            self.box.counts["reconnects"] += 1
            if self.kicked:
                self.kicked = False
                await anyio.sleep(random.uniform(0, self.box.plan.storm_jitter_s))
            else:
                await anyio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0))

    def _received(self, sock: Socket, message: bytes) -> None:
        """Each message, as it is read (in the socket's read callback: nothing here awaits)."""
        change = self.proto.change(message)
        if change is not None:
            cursor, event = change
            if cursor is not None:
                self._advance(cursor)
            if event is not None:
                self._receipt(event)
            return
        frame = self.proto.parse(message)
        if frame.reply is not None:
            sock.send(frame.reply)
        if frame.ready:
            self.sock = sock
            self.box.connected += 1
            self.box.connect_us.record_value(max(1, int((time.perf_counter() - self.opened) * 1e6)))
            self.ready.set()
        self._note(frame)

    def _note(self, frame: Frame) -> None:
        if frame.note == "refetch":
            self.box.unseen.add(self.user)
        if frame.ready and self.last is None and frame.cursor is not None:
            self._advance(frame.cursor)  # where the first session's live changes start
        elif frame.ready or frame.note == "refetch":
            self.cursor = frame.cursor or self.cursor
        elif frame.cursor is not None:
            self._advance(frame.cursor, frame.folded)
        if frame.event is not None:
            self._receipt(frame.event)
        if frame.note:
            self.box.counts[frame.note] += 1

    def _advance(self, cursor: str, folded: int = 0) -> None:
        """A change's cursor (schemas/cursor.py `EPOCH.N-CHECK`): each change of a stream seen
        whole is the one after the last (or after the `folded` changes it stands for too),
        resumes included (the gateway replays from the cursor). A log that did not exist yet
        (epoch `-`) is followed by any epoch's first change."""
        self.cursor = cursor
        at = Cursor.parse(cursor)
        last = self.last
        if last is not None and last != (at.epoch, at.number - 1 - folded) and last != (NO_EPOCH, 0):
            self.box.unseen.add(self.user)
        self.last = (at.epoch, at.number)

    def _receipt(self, event: str) -> None:
        run, _, seq = event.rpartition(".")
        if run == self.box.plan.run_id and seq.isascii() and seq.isdigit():
            self.box.receipts.add(self.user, int(seq), time.time_ns())
            self.box.received += 1
        else:
            self.box.counts["foreign"] += 1

    async def kick(self) -> None:
        sock = self.sock
        if sock is not None:
            self.kicked = True
            await sock.close()


def client_process(plan: ClientPlan, conn: Connection) -> None:
    """Entry point of a client process (spawned)."""
    anyio.run(_main, plan, conn, backend="asyncio", backend_options={"use_uvloop": True})


async def _main(plan: ClientPlan, conn: Connection) -> None:
    box = Box(plan)
    gate = anyio.Semaphore(plan.connect_concurrency)
    sessions = [
        Session(u, plan.urls[u % len(plan.urls)], _token(plan, u), box, protocol_for(plan.protocol))
        for u in plan.users
    ]
    async with anyio.create_task_group() as tg:
        for session in sessions:
            tg.start_soon(session.run, gate)
        command = await _await_start(box, sessions, conn)
        if command[0] == "start":
            tg.start_soon(_report, box, conn)
            if plan.storm_every_s > 0:
                tg.start_soon(_storms, box, sessions, command[1])
            await wait_readable(conn)
            conn.recv()  # "stop"
        box.stopping = True
        async with anyio.create_task_group() as closing:
            _kick_all(closing, sessions)
        tg.cancel_scope.cancel()  # sessions still connecting, the reporter, the storms
    send(conn, ("done", plan.proc, _summary(box), _take(box), box.connect_us.encode()))


def _token(plan: ClientPlan, user: int) -> str:
    return tokens.issue(plan.auth, user_id(user), ttl_s=86_400)


async def _await_start(box: Box, sessions: list[Session], conn: Connection) -> tuple[Any, ...]:
    """Report progress while connecting until the parent says start (or stop)."""
    while True:
        with anyio.move_on_after(0.25):
            await wait_readable(conn)
            command: tuple[Any, ...] = conn.recv()
            return command
        ready = sum(s.ready.is_set() for s in sessions)
        send(conn, ("ready", box.plan.proc, ready, dict(box.counts)))


async def wait_readable(conn: Connection) -> None:
    """Until `conn` (a multiprocessing pipe end) has something to recv()."""
    if not conn.poll():
        await anyio.wait_readable(conn.fileno())
        os.set_blocking(conn.fileno(), True)  # uvloop's reader made it non-blocking


def send(conn: Connection, message: tuple[Any, ...]) -> None:
    """`conn.send`, blocking: the pipe is one socket for both directions, and a concurrent
    `wait_readable` leaves it non-blocking, where a big report would fail with EAGAIN."""
    os.set_blocking(conn.fileno(), True)
    conn.send(message)


async def _report(box: Box, conn: Connection) -> None:
    while True:
        await anyio.sleep(STATS_INTERVAL_S)
        stats = {"received": box.received, "connected": box.connected, **box.counts}
        send(conn, ("stats", box.plan.proc, stats, _take(box)))


async def _storms(box: Box, sessions: list[Session], t0_ns: int) -> None:
    rng = random.Random(box.plan.seed * 7919 + box.plan.proc)
    n = 1
    while True:
        await anyio.sleep(max(0.0, (t0_ns + n * box.plan.storm_every_s * 1e9 - time.time_ns()) / 1e9))
        victims = rng.sample(sessions, round(len(sessions) * box.plan.storm_fraction))
        box.counts["storms"] += 1
        async with anyio.create_task_group() as tg:
            _kick_all(tg, victims)
        n += 1


def _kick_all(tg: TaskGroup, sessions: list[Session]) -> None:
    for session in sessions:
        tg.start_soon(session.kick)


def _summary(box: Box) -> dict[str, Any]:
    return {
        "received": box.received,
        "connected": box.connected,
        "counts": dict(box.counts),
        "unseen": sorted(box.unseen),
    }


def _take(box: Box) -> tuple[bytes, bytes, bytes]:
    """The receipts since the last report, packed (the parent joins them with the ledger)."""
    r, box.receipts = box.receipts, Receipts()
    return r.users.tobytes(), r.seqs.tobytes(), r.received_ns.tobytes()
