"""The parent's side of a Node client process (loadtest/clients_node/clients.js, for
`--client-runtime node`): the same sessions and reports as a loadtest/clients.py process, over
the child's stdin and stdout instead of a multiprocessing pipe, so the observers follow either."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from array import array
from pathlib import Path
from typing import Any, Final

import orjson

from .clients import ClientPlan, token
from .metrics import new_histogram
from .protocols import NOTIFIER_CHANGE

NODE_CLIENTS: Final = Path(__file__).parent / "clients_node" / "clients.js"  # Node's own modules only
PROTOCOLS: Final = frozenset({"notifier"})  # what clients.js speaks


class NodeProcess:
    """A client process as the observers handle one (multiprocessing's Process methods)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid: int | None = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


class NodeConn:
    """The child's stdin and stdout as a multiprocessing Connection: `send` a command as a JSON
    line, `recv` one report as the tuple a Python client process sends (clients.py)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdin is not None and popen.stdout is not None
        self._stdin, self._stdout = popen.stdin, popen.stdout
        self._fd = self._stdout.fileno()

    def fileno(self) -> int:
        return self._fd

    def poll(self) -> bool:
        return bool(select.select([self._fd], [], [], 0)[0])

    def send(self, message: object) -> None:
        self._stdin.write(orjson.dumps(message) + b"\n")
        self._stdin.flush()

    def recv(self) -> tuple[Any, ...]:
        body = self._read(int.from_bytes(self._read(4), "little"))
        head_size = int.from_bytes(body[:4], "little")
        head = orjson.loads(body[4 : 4 + head_size])
        at, n = 4 + head_size, head["n"]
        view = memoryview(body)
        users = array("q", view[at : at + 4 * n].cast("i")).tobytes()
        seqs = array("q", view[at + 4 * n : at + 8 * n].cast("i")).tobytes()
        receipts = (users, seqs, body[at + 8 * n : at + 16 * n])
        kind, proc = head["kind"], head["proc"]
        if kind == "ready":
            return kind, proc, head["ready"], head["counts"]
        if kind == "stats":
            return kind, proc, head["stats"], receipts
        connect_us = new_histogram()
        for value in head["connect_us"]:
            connect_us.record_value(max(1, value))
        return kind, proc, head["summary"], receipts, connect_us.encode()

    def close(self) -> None:
        for stream in (self._stdin, self._stdout):
            try:
                stream.close()
            except BrokenPipeError:  # the child is gone; what it did not read does not matter
                pass

    def _read(self, size: int) -> bytes:
        os.set_blocking(self._fd, True)  # the observers' wait_readable may leave it non-blocking
        parts, left = [], size
        while left:
            part = os.read(self._fd, left)
            if not part:
                raise EOFError("the Node client process ended")
            parts.append(part)
            left -= len(part)
        return b"".join(parts)


def spawn_node(plan: ClientPlan) -> tuple[NodeProcess, NodeConn]:
    if plan.protocol not in PROTOCOLS:
        raise RuntimeError(f"the Node clients speak {', '.join(sorted(PROTOCOLS))} only, not {plan.protocol}")
    if plan.storm_every_s > 0:
        raise RuntimeError("the Node clients make no reconnect storms: use --client-runtime python")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("--client-runtime node needs node (>= 18) on PATH")
    popen = subprocess.Popen([node, str(NODE_CLIENTS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    conn = NodeConn(popen)
    conn.send(
        {
            "proc": plan.proc,
            "users": plan.users,
            "tokens": [token(plan, u) for u in plan.users],
            "urls": plan.urls,
            "run_id": plan.run_id,
            "connect_concurrency": plan.connect_concurrency,
            "change_pattern": NOTIFIER_CHANGE.pattern.decode(),
        }
    )
    return NodeProcess(popen), conn
