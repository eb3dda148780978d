"""The event log's entry: written in the stored form, read in it and in the JSON written before."""

from __future__ import annotations

from datetime import UTC, datetime

from notifier.runtime.eventlog import decode_entry, entry_fields
from schemas.events import Mention, encode_event

MENTION = Mention(
    id="e-1",
    actor="ana",
    occurred_at=datetime(2026, 12, 6, 15, 0, tzinfo=UTC),
    post="p1",
    users=["bob", "carol"],
    text="hi @bob",
)


def _as_redis_gives_it(fields: dict[str, bytes | str | int]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_an_entry_is_written_in_the_stored_form_and_read_back() -> None:
    fields = entry_fields(MENTION, "posts", 1_000, "00-trace")
    assert set(fields) == {"m", "s", "t", "c"}
    logged = decode_entry(b"1-0", _as_redis_gives_it(fields))
    assert (logged.event, logged.service, logged.accepted_ms, logged.trace) == (
        MENTION,
        "posts",
        1_000,
        "00-trace",
    )


def test_an_entry_written_before_holds_the_json_and_still_reads() -> None:
    legacy = {b"e": encode_event(MENTION), b"s": b"posts", b"t": b"1000"}
    logged = decode_entry(b"1-0", legacy)
    assert (logged.event, logged.service, logged.accepted_ms, logged.trace) == (MENTION, "posts", 1_000, "")
