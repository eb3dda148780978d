"""Changes pushed to open consoles as server-sent events: each console holds one stream of the
`modlive:` channel (items entered, claimed, released, decided, raised by reports; audit records)
instead of polling. A comment line every `HEARTBEAT_S` keeps proxies from closing an idle stream."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Final

from redis.asyncio import Redis

from feeds.cluster import client_for
from schemas import keys

HEARTBEAT_S: Final = 15.0


async def changes(redis: Redis, until_s: float = math.inf) -> AsyncIterator[bytes]:
    """`text/event-stream` frames: `event: ready` once subscribed, then one `data:` per change,
    until `until_s` (unix seconds: the moderator token's expiry), then `event: expired` and the
    end (the console reconnects, with a fresh token or to be refused)."""
    # on a cluster, the master of the channel's slot (a PUBLISH reaches every node of a cluster)
    pubsub = (await client_for(redis, keys.mod_changes())).pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(keys.mod_changes())
        yield b"event: ready\ndata: {}\n\n"
        while (left := until_s - time.time()) > 0:
            message = await pubsub.get_message(timeout=min(HEARTBEAT_S, left))
            if message is None:
                yield b": heartbeat\n\n"
                continue
            yield b"data: " + bytes(message["data"]) + b"\n\n"
        yield b"event: expired\ndata: {}\n\n"
    finally:
        await pubsub.aclose()
