"""Helpers shared by the test tiers that run the product's services in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final

import anyio

from notifier.runtime.lifecycle import Service

STOP_GRACE_S: Final = 5.0


@contextlib.asynccontextmanager
async def serving(services: Sequence[Service], *, grace_s: float = STOP_GRACE_S) -> AsyncIterator[None]:
    """Start `services` in order (each ready before the next); on exit stop them in reverse order
    and cancel whatever has not returned within `grace_s` (the supervisor's protocol, minus signals)."""
    async with anyio.create_task_group() as outer:
        async with anyio.create_task_group() as inner:
            for service in services:
                await inner.start(service.run)
            try:
                yield
            finally:
                for service in reversed(services):
                    service.stop()
                outer.start_soon(_cancel_after, inner.cancel_scope, grace_s)
        outer.cancel_scope.cancel()


async def _cancel_after(scope: anyio.CancelScope, delay_s: float) -> None:
    await anyio.sleep(delay_s)
    scope.cancel()
