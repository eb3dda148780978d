"""The event log's entry format and partitioning, shared by ingest (writes) and fan-out (reads)."""

from __future__ import annotations

import zlib

import msgspec

from schemas.events import Event, decode_logged


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


def entry_fields(
    payload: bytes, service: str, accepted_ms: int, trace: str = ""
) -> dict[str, bytes | str | int]:
    fields: dict[str, bytes | str | int] = {"e": payload, "s": service, "t": accepted_ms}
    if trace:
        fields["c"] = trace  # the trace context travels with the entry
    return fields


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> LoggedEvent:
    """Raises KeyError/ValueError/msgspec errors for an entry that is not a valid event."""
    return LoggedEvent(
        entry_id=entry_id,
        event=decode_logged(fields[b"e"]),
        service=fields[b"s"].decode(),
        accepted_ms=int(fields[b"t"]),
        trace=fields[b"c"].decode() if b"c" in fields else "",
    )
