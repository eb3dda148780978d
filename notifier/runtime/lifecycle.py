"""Services and their supervisor: start in order, stop on SIGTERM/SIGINT/SIGHUP with a grace period,
force on a second signal or when the grace runs out. Also the capped, jittered Redis backoff."""

from __future__ import annotations

import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import anyio
from anyio.abc import TaskStatus

from . import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# what stops a role gracefully: an orchestrator's SIGTERM, a Ctrl-C, its terminal closed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Service(Protocol):
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until stopped; call task_status.started() once really ready."""

    def stop(self) -> None:
        """Phase 1: take no new work, finish or release what is in hand, then return from run()."""


async def run_services(
    services: Sequence[Service], *, grace_s: float, drain_s: float = 0.0, handle_signals: bool = True
) -> None:
    """Start `services` in order (each ready before the next), run until all return or a signal."""
    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as inner:
            if handle_signals:
                outer.start_soon(_stop_on_signal, services, grace_s, drain_s, inner.cancel_scope)
            for service in services:
                await inner.start(service.run)
            log.info("ready services=%d", len(services))
        outer.cancel_scope.cancel()


async def _stop_on_signal(
    services: Sequence[Service], grace_s: float, drain_s: float, force: anyio.CancelScope
) -> None:
    """On the first signal the last service stops (health.Started: /readyz turns 503 `stopping`);
    for `drain_s` everything else goes on serving while load balancers take the process out,
    then the rest stop, with `grace_s` to finish. A second signal cancels at once."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for signum in signals:
            log.info(
                "stopping signal=%s drain_s=%s grace_s=%s", signal.Signals(signum).name, drain_s, grace_s
            )
            break
        others = list(services)
        if others:
            others.pop().stop()
        with anyio.move_on_after(drain_s):
            async for _ in signals:
                log.warning("second signal: stopping now")
                force.cancel()
                return
        for service in reversed(others):
            service.stop()
        with anyio.move_on_after(grace_s):
            async for _ in signals:
                log.warning("second signal: stopping now")
                break
    force.cancel()


async def unless_signalled(wait: Callable[[], Awaitable[T]]) -> T | None:
    """`wait()`, or None if a stop signal (STOP_SIGNALS) comes first: a role still waiting for Redis at
    start-up stops cleanly (exit 0) instead of dying by the default signal handler."""
    done: list[T] = []
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async for signum in signals:
                    log.info("stopping during start-up signal=%s", signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        done.append(await wait())
        tg.cancel_scope.cancel()
    return done[0] if done else None


class Backoff:
    """Capped exponential backoff with full jitter; logs once per outage and once on recovery."""

    def __init__(self, what: str, *, base_s: float = 0.05, cap_s: float = 2.0) -> None:
        self._what = what
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0
        counted = metrics.current()
        self._errors = counted.redis_errors(what)
        self._reconnects = counted.redis_reconnects(what)

    async def sleep(self, exc: BaseException) -> None:
        if self._failures == 0:
            log.warning("redis unavailable in %s: %s; retrying", self._what, exc)
        self._failures += 1
        self._errors.inc()
        delay = min(self._cap_s, self._base_s * 2 ** min(self._failures, 16))
        await anyio.sleep(random.uniform(0, delay))

    @property
    def failing(self) -> bool:
        """Since the last reset, the outage was met (and logged)."""
        return self._failures > 0

    def reset(self) -> None:
        if self._failures:
            log.warning("redis back in %s after %d failed attempts", self._what, self._failures)
            self._reconnects.inc()
        self._failures = 0
