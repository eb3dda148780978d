"""Outbox: the bounded queue between the hub (which never waits) and one session's writer."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    """A FIFO emptied in batches, by the session's writer task or, while that task waits, by
    the hub's flush (gateway/session.py `Session.flush`). `put_nowait` refuses when `capacity`
    items wait (the caller cuts the client off rather than buffer without bound) and wakes
    nobody: the hub flushes the queue once its read is done, and wakes the writer only for
    what it cannot write itself.

    Kept small because a gateway holds one per connection: a list swapped out whole and a
    future only while the writer waits (an asyncio.Event or a memory object stream carries
    deques of waiters, ~1 KB per connection, and costs more per item)."""

    __slots__ = ("_capacity", "_items", "_waiter", "closed")

    def __init__(self, capacity: int) -> None:
        self._items: list[T] = []
        self._capacity = capacity
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> bool:
        """Queue `item`; False when full. Items put after `close` are dropped."""
        if self.closed:
            return True
        if len(self._items) >= self._capacity:
            return False
        self._items.append(item)
        return True

    @property
    def waiting(self) -> bool:
        """The writer waits in `take` and has not been woken."""
        return self._waiter is not None and not self._waiter.done()

    async def take(self) -> list[T]:
        """Every queued item, oldest first, once there are some and the writer is woken (at
        once if there are some already); [] once closed."""
        while not self._items and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return []
        return self.take_nowait()

    def take_nowait(self) -> list[T]:
        items, self._items = self._items, []
        return items

    def restore(self, items: list[T]) -> None:
        """Put `items`, taken by `take_nowait`, back at the head of the queue (never refused)."""
        if items and not self.closed:
            self._items[:0] = items

    def wake(self) -> None:
        """Have the writer's `take` return (if it waits and anything is queued)."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._items = []
        self.wake()
