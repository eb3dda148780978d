"""`python -m loadtest.stub_api api`: the product's api role exactly as `python -m notifier api`
builds it (same settings, routes, middleware and server), except that the event-log append
(notifier.api.append.EventLog.append: the dedupe script and XADD) is replaced by one that
answers at once with synthetic positions. The `ingest` stage runs the same load against both
to show how much of the API's cost the append is. Everything else still talks to Redis as
usual (startup checks, the backpressure sampler, /readyz)."""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from notifier import cli
from notifier.api.append import Appended, EventLog
from notifier.runtime.eventlog import partition_of
from notifier.runtime.settings import IngestSettings
from schemas.events import Event

Append = Callable[[EventLog, Sequence[Event], str], Coroutine[Any, Any, list[Appended]]]


def stubbed_append(partitions: int) -> Append:
    """An `EventLog.append` that accepts every event at a made-up position of its partition."""
    sequence = itertools.count()

    async def append(self: EventLog, events: Sequence[Event], service: str) -> list[Appended]:
        ms = int(time.time() * 1000)
        return [
            Appended("accepted", f"{partition_of(e.actor, partitions)}/{ms}-{next(sequence)}") for e in events
        ]

    return append


def main(argv: Sequence[str]) -> int:
    if list(argv) != ["api"]:
        print("usage: python -m loadtest.stub_api api", file=sys.stderr)
        return 2
    partitions = int(os.environ.get("NOTIFIER_INGEST_PARTITIONS", IngestSettings().partitions))
    EventLog.append = stubbed_append(partitions)  # type: ignore[method-assign,assignment]
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
