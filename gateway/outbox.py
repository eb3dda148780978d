"""Outbox: the bounded queue between the hub (which never waits) and one session's writer."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    """A FIFO the writer drains in batches. `put_nowait` refuses when `capacity` items wait
    (the caller cuts the client off rather than buffer without bound).

    Kept small because a gateway holds one per connection: a list swapped out whole and a
    future only while the writer waits (an asyncio.Event or a memory object stream carries
    deques of waiters, ~1 KB per connection, and costs more per item)."""

    __slots__ = ("_capacity", "_items", "_waiter", "closed")

    def __init__(self, capacity: int) -> None:
        self._items: list[T] = []
        self._capacity = capacity
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put_nowait(self, item: T) -> bool:
        """Queue `item`; False when full. Items put after `close` are dropped."""
        if self.closed:
            return True
        if len(self._items) >= self._capacity:
            return False
        self._items.append(item)
        self._wake()
        return True

    async def take(self) -> list[T]:
        """Every queued item, oldest first, waiting while there is none; [] once closed."""
        while not self._items and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return []
        items, self._items = self._items, []
        return items

    def close(self) -> None:
        self.closed = True
        self._items = []
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
