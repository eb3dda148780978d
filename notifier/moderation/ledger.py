"""Every change to moderation state commits as a WATCH/MULTI transaction, and the changes people
make (decisions, bans, suspensions, unbans, policy drops) commit together with their record in the
hash-chained audit trail and a notice to open consoles. The only code that touches
`audit:`/`audit-head:` and publishes on `modlive:`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from feeds.changelog import entry_id
from feeds.cluster import client_for
from schemas import keys
from schemas.errors import Reason, Rejected

from . import audit
from .audit import AuditRecord, Link, Verification
from .records import Moderator

T = TypeVar("T")
Clock = Callable[[], int]

_ATTEMPTS: Final = 16  # optimistic retries before answering "busy"


class Ledger:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self.redis = redis
        self.clock = clock

    async def transact(self, watched: Sequence[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run `body` under WATCH; it reads, then `multi()`s and queues writes. Retried when a
        watched key changed before EXEC. Watch `keys.audit_head()` to append a record."""
        for _ in range(_ATTEMPTS):
            client = await client_for(self.redis, watched[0])  # on a cluster: the {mod} master
            async with client.pipeline(transaction=True) as pipe:
                await pipe.watch(*watched)
                try:
                    result = await body(pipe)
                    if pipe.explicit_transaction:
                        await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise Rejected(Reason.UNAVAILABLE, "the item kept changing; retry")

    @staticmethod
    def announce(pipe: Pipeline, kind: str, **fields: str) -> None:
        """Queue a change notice to open consoles (inside the MULTI: sent only if it commits)."""
        pipe.publish(keys.mod_changes(), msgspec.json.encode({"kind": kind, **fields}))

    async def head(self, pipe: Pipeline) -> bytes | None:
        """The audit head, read under WATCH before `multi()`."""
        head: bytes | None = await pipe.get(keys.audit_head())
        return head

    def append(
        self,
        pipe: Pipeline,
        head: bytes | None,
        who: Moderator,
        action: str,
        *,
        item: str = "",
        actor: str = "",
        before: dict[str, str] | None = None,
        after: dict[str, str] | None = None,
        reason: str = "",
    ) -> None:
        """Queue the record's XADD and the new head (after `multi()`)."""
        record = AuditRecord(
            at_ms=self.clock(),
            who=who.user,
            role=who.role,
            action=action,
            item=item,
            actor=actor,
            before=before or {},
            after=after or {},
            reason=reason,
            request=who.request,
        )
        prev = head.decode() if head else audit.GENESIS
        body = audit.encode(record)
        digest = audit.chain_hash(prev, body)
        pipe.xadd(keys.audit(), {"d": body, "p": prev, "h": digest})
        pipe.set(keys.audit_head(), digest)
        self.announce(pipe, "audit", action=action, item=item, actor=actor)

    async def page(
        self, after: str | None, limit: int, *, newest_first: bool = False
    ) -> tuple[list[Link], str | None]:
        """Records oldest first after `after`, or newest first before it."""
        if newest_first:
            if after is not None and entry_id(after) == (0, 0):
                return [], None  # nothing is before the first id (and Redis refuses the range)
            end = f"({after}" if after else "+"
            rows = await self.redis.xrevrange(keys.audit(), max=end, min="-", count=limit)
        else:
            start = f"({after}" if after else "-"
            rows = await self.redis.xrange(keys.audit(), min=start, max="+", count=limit)
        links = [_link(entry_id, fields) for entry_id, fields in rows]
        return links, (links[-1].entry if len(links) == limit else None)

    async def verify(self) -> Verification:
        links: list[Link] = []
        after: str | None = None
        while True:
            page, after = await self.page(after, 1_000)
            links += page
            if after is None:
                break
        head = await self.redis.get(keys.audit_head())
        return audit.verify(links, head.decode() if head else None)


def _link(entry_id: bytes, fields: dict[bytes, bytes]) -> Link:
    """A stored record as it is: a field edited away reads as empty, and `verify` reports the
    break rather than the read failing."""

    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    return Link(entry_id.decode(), fields.get(b"d", b""), text(b"p"), text(b"h"))
