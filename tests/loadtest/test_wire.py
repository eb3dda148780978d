"""The observers' fast path (`Protocol.change`) against the full parse (`Protocol.parse`), on frames
built as the servers build them: wherever the fast path answers, the full parse says the same and
nothing more; the common change frames take the fast path; everything else declines it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from socketio import packet

from loadtest.protocols import Frame, NotifierProtocol, Protocol, SocketIOProtocol
from loadtest.publisher import change_of
from schemas import protocol
from schemas.errors import Reason

AT_MS = 1_795_675_004_000


def _lua_view(gid: str, count: int = 1, *, text: str | None = None, read: bool = False) -> str:
    """A group as feeds/lua/common.lua `view()` renders it (keys in its order)."""
    verb = gid.partition(":")[0]
    text_field = "" if text is None else ',"text":' + orjson.dumps(text).decode()
    return (
        f'{{"id":"{gid}","verb":"{verb}","post":"p1","comment":"c1"{text_field},"actors":["a1","a2"],'
        f'"count":{count},"first_at":{AT_MS},"last_at":{AT_MS},"read":{"true" if read else "false"}}}'
    )


def _lua_upsert(group: str, unread: int = 3) -> str:
    """feeds/lua/common.lua `change_json()` + `upsert_tail()`."""
    return f'{{"op":"upsert","unread":{unread},"group":{group}}}'


def _published(event: str, **group: Any) -> str:
    change = change_of(event, "a7", AT_MS)
    change["group"].update(group)
    return orjson.dumps(change).decode()


FAST_NOTIFIER = [  # (cursor, payload): plain change frames of one of our events
    ("lt1.43-0", _published("lt1.42")),
    ("0192f3a1.7-0", _lua_upsert(_lua_view("comment:lt1.9"))),
    ("e.5-3", _lua_upsert(_lua_view("mention:lt1.9~a3"))),
    ("e.5-3", _lua_upsert(_lua_view("like:p1:3"))),  # not one of ours: no event
    ("e.6-0", _lua_upsert(_lua_view("comment:lt1.10", read=True), unread=0)),
    ("e.7-0", _lua_upsert(_lua_view("comment:lt1.11", text="plain words"))),
    ("é.8-0", _published("lt1.12")),  # not ASCII
]

SLOW_NOTIFIER = [  # change frames the fast path must leave to the full parse
    ("e.1-0", _published("lt1.1", count=2)),
    ("e.1-0", _lua_upsert(_lua_view("comment:lt1.2", count=12))),
    ("e.1-0", _published("lt1.1", count=1.0)),
    ("e.1-0", _lua_upsert(_lua_view("comment:lt1.3", text='he said "count":1, then } and ]'))),
    ("e.1-0", _lua_upsert(_lua_view("comment:lt1.4", text="line\nbreak"))),
    ("e.1-0", _published('lt1.5"x')),  # an escaped quote in the id
    ("e.1-0", _published("lt1.6", id="comment:lt1\\u0036")),
    ("e.1-0", '{"op":"upsert","unread":1,"group":null}'),
    ("e.1-0", '{"op":"upsert","unread":1,"group":{"id":"comment:lt1.7","post":{"count":1},"count":2}}'),
    ("e.1-0", '{"op":"remove","unread":0,"id":"comment:lt1.8"}'),
    ("e.1-0", '{"op":"read","unread":0,"groups":["comment:lt1.8","like:p1:3"]}'),
    ("e.1-0", '{"op":"read","unread":0,"all":true}'),
    ("e.1-0", '{"unread":1,"op":"upsert","group":{"id":"comment:lt1.9","count":1}}'),  # another order
    ("e\\u002e1-0", _published("lt1.10")),  # an escape in the cursor
]

OTHER_NOTIFIER = [
    protocol.ready("u1", "e.0-0", 0),
    protocol.refetch(Reason.CURSOR_EXPIRED, "e.9-0"),
    protocol.error(Reason.SLOW_CONSUMER, "send queue full; reconnect with your cursor"),
    protocol.pong(),
]


def _agree(proto: Protocol, data: bytes) -> tuple[str | None, str | None] | None:
    """The fast path's answer, checked against the full parse where it gives one."""
    fast = proto.change(data)
    if fast is not None:
        assert proto.parse(data) == Frame(cursor=fast[0], event=fast[1])
    return fast


@pytest.mark.parametrize(("cursor", "payload"), FAST_NOTIFIER)
def test_plain_change_frames_take_the_fast_path(cursor: str, payload: str) -> None:
    data = protocol.change(cursor, payload).encode()
    fast = _agree(NotifierProtocol(), data)
    full = NotifierProtocol().parse(data)
    assert fast == (full.cursor, full.event) and full == Frame(cursor=cursor, event=full.event)


@pytest.mark.parametrize(("cursor", "payload"), SLOW_NOTIFIER)
def test_other_change_frames_take_the_full_parse(cursor: str, payload: str) -> None:
    assert _agree(NotifierProtocol(), protocol.change(cursor, payload).encode()) is None


@pytest.mark.parametrize("text", OTHER_NOTIFIER)
def test_frames_other_than_changes_take_the_full_parse(text: str) -> None:
    assert _agree(NotifierProtocol(), text.encode()) is None


def test_the_fast_path_reads_the_event_ids_the_producers_chose() -> None:
    ours = NotifierProtocol()
    assert ours.change(protocol.change("e.1-0", _published("lt1.42")).encode()) == ("e.1-0", "lt1.42")
    mention = _lua_upsert(_lua_view("mention:lt1.9~a3"))
    assert ours.change(protocol.change("e.2-0", mention).encode()) == ("e.2-0", "lt1.9")


def _engineio_message(data: list[Any]) -> bytes:
    """An Engine.IO message (4) carrying the Socket.IO event packet python-socketio encodes."""
    encoded: str = packet.Packet(packet.EVENT, data=data).encode()
    return ("4" + encoded).encode()


def test_socketio_change_events_take_the_fast_path() -> None:
    theirs = SocketIOProtocol()
    for body in (
        {"event": "lt1.7", "change": change_of("lt1.7", "a1", AT_MS)},  # as loadtest/publisher.py
        {"event": "lt1.8"},  # as loadtest/baseline_socketio.py
    ):
        assert _agree(theirs, _engineio_message(["change", body])) == (None, body["event"])


@pytest.mark.parametrize(
    "data",
    [
        _engineio_message(["change", {"change": {}, "event": "lt1.7"}]),  # another order
        _engineio_message(["change", {"event": 'lt1."7'}]),
        _engineio_message(["change", {"event": "é.7"}]),  # python-socketio escapes it
        _engineio_message(["change", {"event": None}]),
        _engineio_message(["other", {"event": "lt1.7"}]),
        b"2",
        b'0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
        b'40{"sid":"y"}',
        b'44{"message":"nope"}',
        b"41",
    ],
)
def test_other_socketio_packets_take_the_full_parse(data: bytes) -> None:
    assert _agree(SocketIOProtocol(), data) is None
