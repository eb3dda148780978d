"""A seeded, time-bounded chaos run (RELIABILITY.md T-L3, scaled to one small machine): load
flows while worker SIGKILLs (restarted under the same name), Redis crashes (AOF, fsync always),
Redis freezes, pub/sub kills and client disconnects follow a schedule drawn from the seed.
Then every fault is healed, fan-out drains and the checker gives its verdict.

    python -m tests.faults.chaos --seed 7 --duration-s 20
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import TaskGroup

from .checker import Verdict, check
from .harness import PARTITIONS, Lab, RoleProcess
from .inject import crash_redis, freeze_redis, kill_holding_entries
from .ledger import CommentFactory
from .observers import PushClient, quiesce, start_clients, wait_clients_caught_up

USERS: Final = ("ana", "ben", "cleo", "dan")
WORKERS: Final = 3
FAULTS: Final = ("kill-worker", "crash-redis", "freeze-redis", "kill-pubsub", "drop-client")
SETTLE_S: Final = 2.0  # the schedule stops this long before the load does
DRAIN_TIMEOUT_S: Final = 120.0


class Chaos:
    """Draws each fault and its timing from `rng`; outcomes still depend on the machine."""

    def __init__(
        self, lab: Lab, rng: random.Random, workers: Sequence[RoleProcess], clients: Sequence[PushClient]
    ) -> None:
        self.lab = lab
        self.rng = rng
        self.workers = list(workers)
        self.clients = list(clients)
        self.injected: list[str] = []
        self._began = time.monotonic()

    def _note(self, what: str) -> None:
        self.injected.append(f"+{time.monotonic() - self._began:.1f}s {what}")

    async def run(self, tg: TaskGroup, until: float) -> None:
        while True:
            pause_s = self.rng.uniform(0.4, 1.5)
            fault = self.rng.choice(FAULTS)
            hold_s = self.rng.uniform(0.3, 1.5)
            if time.monotonic() + pause_s + hold_s >= until:
                return
            await anyio.sleep(pause_s)  # the schedule's pace
            await self._inject(tg, fault, hold_s)

    async def _inject(self, tg: TaskGroup, fault: str, hold_s: float) -> None:
        lab = self.lab
        if fault == "kill-worker":
            alive = [w for w in self.workers if w.alive]
            if not alive:
                return
            victim = self.rng.choice(alive)
            try:
                held = await kill_holding_entries(lab.redis, victim, PARTITIONS, timeout_s=1.0)
                self._note(f"SIGKILL {victim.name} holding {len(held)}")
            except TimeoutError:
                victim.kill()
                self._note(f"SIGKILL {victim.name}")
            tg.start_soon(self._restart_later, victim, hold_s * 2)
        elif fault == "crash-redis":
            self._note(f"redis SIGKILL for {hold_s:.1f}s")
            await crash_redis(lab.server, hold_s)
        elif fault == "freeze-redis":
            self._note(f"redis SIGSTOP for {hold_s:.1f}s")
            await freeze_redis(lab.server, hold_s)
        elif fault == "kill-pubsub":
            killed = await lab.server.kill_pubsub_clients()
            self._note(f"CLIENT KILL TYPE pubsub ({killed})")
        else:
            client = self.rng.choice(self.clients)
            self._note(f"client {client.user} disconnects")
            await client.disconnect()

    async def _restart_later(self, worker: RoleProcess, delay_s: float) -> None:
        await anyio.sleep(delay_s)  # how long the worker stays dead
        worker.spawn()  # same consumer name: its own pending entries first
        self._note(f"restart {worker.name}")
        await worker.wait_ready()

    async def heal(self) -> None:
        if self.lab.server.paused:
            self.lab.server.resume()
        for worker in self.workers:
            if not worker.alive:
                worker.spawn()
                await worker.wait_ready()


def run_chaos(seed: int, duration_s: float, workdir: Path) -> Verdict:
    """Run the chaos schedule of `seed` for `duration_s` seconds of load; print and return the verdict."""
    return anyio.run(_run_chaos, seed, duration_s, workdir)


async def _run_chaos(seed: int, duration_s: float, workdir: Path) -> Verdict:
    rng = random.Random(seed)
    async with Lab(workdir, appendfsync="always") as lab:
        workers = [lab.worker(f"worker-{i}") for i in range(WORKERS)]
        gateway = lab.role("gateway", "gateway")
        await lab.start(*workers, lab.role("api", "api"), gateway)
        clients = [PushClient(u, lab.ws_url, lab.http, lab.token(u)) for u in (*USERS, USERS[0])]
        factory = CommentFactory(f"chaos{seed}", USERS)
        chaos = Chaos(lab, rng, workers, clients)
        async with anyio.create_task_group() as tg:
            await start_clients(tg, clients)
            began = time.monotonic()
            async with anyio.create_task_group() as run:
                run.start_soon(
                    partial(lab.load, factory, count=10**6, duration_s=duration_s, rate_per_s=100, retries=2)
                )
                await chaos.run(run, until=began + duration_s - SETTLE_S)
            await chaos.heal()
            drain_s = await quiesce(lab.redis, PARTITIONS, DRAIN_TIMEOUT_S)
            await wait_clients_caught_up(lab.redis, clients, 30)
            verdict = await check(
                lab.redis, lab.ledger, partitions=PARTITIONS, clients=clients, faults=chaos.injected
            )
            tg.cancel_scope.cancel()
        print(
            f"chaos seed={seed} duration_s={duration_s}: load {time.monotonic() - began:.1f}s, drained "
            f"{drain_s:.2f}s after healing; statuses {dict(lab.ledger.histogram())}\n{verdict.report()}"
        )
        return verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary directory")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="notifier-chaos-"))
    print(f"chaos workdir (logs, redis data): {workdir}")
    verdict = run_chaos(args.seed, args.duration_s, workdir)
    return 0 if verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
