"""WebSocket frames, both ways. Client frames are decoded once at the edge; server frames are
JSON text built here (change frames by concatenation: the payload is already JSON)."""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

import msgspec

from .errors import Reason


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="auth"):
    """First frame (within the deadline), and later to refresh the token of the same user."""

    token: Annotated[str, msgspec.Meta(max_length=4096)]
    cursor: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class Ping(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", tag="ping"):
    pass


ClientFrame: TypeAlias = Auth | Ping
_client: Final = msgspec.json.Decoder(ClientFrame)
_encode: Final = msgspec.json.Encoder()


def decode_client(raw: str | bytes) -> ClientFrame:
    """Raises msgspec.DecodeError / ValidationError for anything that is not a client frame."""
    frame: ClientFrame = _client.decode(raw)
    return frame


def change(cursor: str, payload: str) -> str:
    """A change to the user's inbox; `payload` is the change-log entry's JSON object."""
    return '{"type":"change","cursor":"' + cursor + '","change":' + payload + "}"


def ready(user: str, cursor: str, replayed: int) -> str:
    body = {"type": "ready", "user": user, "cursor": cursor, "replayed": replayed}
    return _encode.encode(body).decode()


def refetch(reason: Reason, cursor: str) -> str:
    """The client's position is gone: refetch the inbox over REST, then continue from `cursor`."""
    return _encode.encode({"type": "refetch", "reason": reason.value, "cursor": cursor}).decode()


def pong() -> str:
    return '{"type":"pong"}'


def error(reason: Reason, detail: str) -> str:
    return _encode.encode({"type": "error", "error": reason.value, "detail": detail}).decode()
