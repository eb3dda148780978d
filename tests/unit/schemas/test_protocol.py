"""WebSocket frames: client frames decode strictly; server frames are valid JSON of a fixed shape."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from schemas import protocol
from schemas.errors import Reason


def test_auth_frame_with_and_without_cursor() -> None:
    assert protocol.decode_client('{"type": "auth", "token": "t"}') == protocol.Auth("t")
    frame = protocol.decode_client(b'{"type": "auth", "token": "t", "cursor": "e.1-0"}')
    assert frame == protocol.Auth("t", "e.1-0")


def test_ping_frame() -> None:
    assert protocol.decode_client('{"type": "ping"}') == protocol.Ping()


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "pong"}',
        '{"type": "auth"}',
        '{"type": "auth", "token": 5}',
        '{"type": "auth", "token": "t", "user": "bob"}',
        '{"type": "ping", "x": 1}',
        '{"token": "t"}',
        '{"type": "auth", "token": "' + "t" * 4097 + '"}',
        '{"type": "auth", "token": "t", "cursor": "' + "c" * 65 + '"}',
        "[]",
    ],
)
def test_anything_else_is_refused(raw: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        protocol.decode_client(raw)


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("raw", ["", "{", "ping", DEEP, '{"x": ' + DEEP + ', "type": "ping"}'])
def test_malformed_frames_are_decode_errors(raw: str) -> None:
    with pytest.raises(msgspec.DecodeError):
        protocol.decode_client(raw)


def test_change_frame_embeds_the_payload_object() -> None:
    payload = '{"op":"read","all":true,"unread":0}'
    frame = orjson.loads(protocol.change("e.1-0", payload))
    assert frame == {"type": "change", "cursor": "e.1-0", "change": orjson.loads(payload)}


def test_server_frames() -> None:
    assert orjson.loads(protocol.ready("bob", "e.2-0", 3)) == {
        "type": "ready",
        "user": "bob",
        "cursor": "e.2-0",
        "replayed": 3,
    }
    assert orjson.loads(protocol.refetch(Reason.CURSOR_EXPIRED, "e.9-0")) == {
        "type": "refetch",
        "reason": "cursor_expired",
        "cursor": "e.9-0",
    }
    assert orjson.loads(protocol.pong()) == {"type": "pong"}
    assert orjson.loads(protocol.error(Reason.MALFORMED, 'bad "frame"')) == {
        "type": "error",
        "error": "malformed",
        "detail": 'bad "frame"',
    }
