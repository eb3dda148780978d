"""Outbox: the bounded queue between the hub (which never waits) and one session's writer."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    """A FIFO the writer drains in batches. `put_nowait` refuses when `capacity` items wait
    (the caller cuts the client off rather than buffer without bound). Cheaper per item than
    a memory object stream: no checkpoint or task lookup per item, one wake-up per batch.
    asyncio-only (the gateway runs under uvicorn): one reusable event instead of a new
    anyio.Event per wait."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._wakeup = asyncio.Event()
        self.closed = False

    def put_nowait(self, item: T) -> bool:
        """Queue `item`; False when full. Items put after `close` are dropped."""
        if self.closed:
            return True
        if len(self._items) >= self._capacity:
            return False
        self._items.append(item)
        self._wakeup.set()
        return True

    async def take(self) -> list[T]:
        """Every queued item, oldest first, waiting while there is none; [] once closed."""
        while not self._items and not self.closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self.closed:
            return []
        items = list(self._items)
        self._items.clear()
        return items

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._wakeup.set()
