"""The event log's entry format and partitioning, shared by ingest (writes) and fan-out (reads)."""

from __future__ import annotations

import zlib
from typing import Any, Final

import msgspec

from feeds.changelog import entry_id
from schemas import keys
from schemas.events import Event, decode_logged, decode_stored, encode_stored


def partition_of(actor: str, partitions: int) -> int:
    """An actor's events always share a partition, so they stay in order relative to each other."""
    return zlib.crc32(actor.encode()) % partitions


class LoggedEvent(msgspec.Struct, frozen=True):
    """An event as read from the log (a struct: the fan-out builds one per event)."""

    entry_id: bytes
    event: Event
    service: str
    accepted_ms: int
    trace: str = ""  # W3C traceparent of the append, when tracing is on
    redriven_from: bytes = b""  # a redriven dead letter's: the entry id it was first appended as


# An entry's fields (README "Redis keys"): the event (`EVENT`: schemas.events.encode_stored;
# entries written before it hold the contract's JSON under `EVENT_JSON`), the calling service,
# the acceptance time (ms), the append's W3C traceparent when tracing is on, and for a redriven
# dead letter the entry id it was first appended as (`REDRIVEN_FROM`: moderation's velocity
# rule counts it as of then, notifier/moderation/content.py).
EVENT: Final = "m"
EVENT_JSON: Final = "e"
SERVICE: Final = "s"
ACCEPTED: Final = "t"
TRACE: Final = "c"
REDRIVEN_FROM: Final = "r"
EVENT_FIELDS: Final = (EVENT, EVENT_JSON, SERVICE, ACCEPTED)  # what a redrive copies (no trace)
_EVENT, _EVENT_JSON, _SERVICE, _ACCEPTED, _TRACE, _REDRIVEN_FROM = (
    f.encode() for f in (EVENT, EVENT_JSON, SERVICE, ACCEPTED, TRACE, REDRIVEN_FROM)
)


def entry_fields(
    event: Event, service: str, accepted_ms: int, trace: str = ""
) -> dict[str, bytes | str | int]:
    fields: dict[str, bytes | str | int] = {
        EVENT: encode_stored(event),
        SERVICE: service,
        ACCEPTED: accepted_ms,
    }
    if trace:
        fields[TRACE] = trace  # the trace context travels with the entry
    return fields


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> LoggedEvent:
    """Raises KeyError/ValueError/msgspec errors for an entry that is not a valid event."""
    stored = fields.get(_EVENT)
    return LoggedEvent(
        entry_id=entry_id,
        event=decode_stored(stored) if stored is not None else decode_logged(fields[_EVENT_JSON]),
        service=fields[_SERVICE].decode(),
        accepted_ms=int(fields[_ACCEPTED]),
        trace=fields[_TRACE].decode() if _TRACE in fields else "",
        redriven_from=fields.get(_REDRIVEN_FROM, b""),
    )


def fanout_group(groups: Any) -> dict[Any, Any] | None:
    """Group `fanout` in an XINFO GROUPS reply (an error reply: no stream yet), or None."""
    if isinstance(groups, BaseException):
        return None
    for group in groups:
        if group["name"] in (keys.FANOUT_GROUP, keys.FANOUT_GROUP.encode()):
            return dict(group)
    return None


def fanout_lag(group: dict[Any, Any] | None, length: int, last_entry: bytes | str | None) -> int:
    """Entries of a partition (`length` long, its newest entry `last_entry`) that group
    `fanout` has not read yet. Redis's own `lag` (XINFO GROUPS) can stay wrong for good: an
    AOF reload rewinds a group's entries-read to the last rewrite (Redis 7.0.15: a group that
    had read everything reported the reads since as lag, and ingest's backpressure counted
    them). So a group that has delivered the newest entry has none, and no lag is longer than
    the stream; without `lag` (after deletions) the stream's length bounds it."""
    if group is None:
        return length
    if last_entry is None or entry_id(group["last-delivered-id"]) >= entry_id(last_entry):
        return 0
    lag = group.get("lag")
    return length if lag is None else min(int(lag), length)
