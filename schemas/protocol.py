"""WebSocket frames, both ways. Client frames are decoded once at the edge; server frames are
JSON text built here (change frames by concatenation: the payload is already JSON)."""

from __future__ import annotations

from typing import Annotated, Final, TypeAlias

import msgspec

from .errors import Reason
from .http import Group, Post
from .nesting import shallow


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
    frame: ClientFrame = shallow(_client.decode, raw)
    return frame


class ReadyFrame(msgspec.Struct, frozen=True, tag_field="type", tag="ready"):
    """Sent once after the resume replay (the `replayed` changes precede it); live changes follow."""

    user: str
    cursor: Annotated[str, msgspec.Meta(description="opaque: the resume point")]
    replayed: int


# What each change says: built by the scripts that log it (lua/common.lua change_json) and by
# feed_added / feed_removed below; typed here for the AsyncAPI document and its checks.
Unread = Annotated[int, msgspec.Meta(description="the unread count after the change")]
Unseen = Annotated[int, msgspec.Meta(description="the badge after it: groups active after the seen mark")]


class Upsert(msgspec.Struct, frozen=True, tag_field="op", tag="upsert"):
    """A group created or changed (as in REST)."""

    group: Group
    unread: Unread
    unseen: Unseen
    # live only: the groups the inbox cap dropped to make room for it (a replay sends removes)
    dropped: (
        Annotated[list[str], msgspec.Meta(description="ids the inbox cap removed for it")] | msgspec.UnsetType
    ) = msgspec.UNSET


class Remove(msgspec.Struct, frozen=True, tag_field="op", tag="remove"):
    """A group emptied by undos, retracted, or dropped by the inbox cap."""

    id: str
    unread: Unread
    unseen: Unseen


class Read(msgspec.Struct, frozen=True, tag_field="op", tag="read"):
    """Groups marked read: `groups` (their ids) or `all`."""

    unread: Unread
    unseen: Unseen
    groups: list[str] | msgspec.UnsetType = msgspec.UNSET
    all: bool | msgspec.UnsetType = msgspec.UNSET


class Seen(msgspec.Struct, frozen=True, tag_field="op", tag="seen"):
    """The inbox marked seen up to `seen_at` (ms), on this or another device."""

    seen_at: int
    unread: Unread
    unseen: Unseen


InboxChange: TypeAlias = Upsert | Remove | Read | Seen


class ChangeFrame(msgspec.Struct, frozen=True, tag_field="type", tag="change"):
    """One change to the inbox, in log order: remember `cursor`."""

    cursor: Annotated[str, msgspec.Meta(description="opaque: the resume point")]
    change: InboxChange


Cursor = Annotated[str, msgspec.Meta(description="opaque: the resume point")]


class FeedAdd(msgspec.Struct, frozen=True, tag_field="op", tag="add"):
    """A post pushed into the home feed (an add of a post already shown replaces it)."""

    post: Post


class FeedRemove(msgspec.Struct, frozen=True, tag_field="op", tag="remove"):
    """A post left the home feed: deleted, or its author unfollowed."""

    author: str
    id: str


FeedChange: TypeAlias = FeedAdd | FeedRemove


class FeedFrame(msgspec.Struct, frozen=True, tag_field="type", tag="feed"):
    """One change to the home feed, numbered in the same log as the inbox's: remember `cursor`."""

    cursor: Cursor
    change: FeedChange


class RefetchFrame(msgspec.Struct, frozen=True, tag_field="type", tag="refetch"):
    """The cursor cannot be resumed: reload the inbox then the home feed over REST, then continue
    from `cursor`."""

    reason: str
    cursor: str


class PongFrame(msgspec.Struct, frozen=True, tag_field="type", tag="pong"):
    """The answer to `ping`."""


class ErrorFrame(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    """Sent just before the server closes the connection with the reason's close code."""

    error: str
    detail: str


def change(cursor: str, payload: str) -> str:
    """A change to the user's inbox; `payload` is the change-log entry's JSON object."""
    return '{"type":"change","cursor":"' + cursor + '","change":' + payload + "}"


def feed(cursor: str, payload: str) -> str:
    """A change to the user's home feed; `payload` is `feed_added` or `feed_removed`."""
    return '{"type":"feed","cursor":"' + cursor + '","change":' + payload + "}"


def feed_added(post: bytes) -> bytes:
    """A feed change: `post` (its JSON record, feeds/timeline.py) was pushed into the feed."""
    return b'{"op":"add","post":' + post + b"}"


def feed_removed(author: str, post: str) -> bytes:
    """A feed change: `author`'s `post` left the feed (deleted, or its author unfollowed)."""
    return _encode.encode({"op": "remove", "author": author, "id": post})


def ready(user: str, cursor: str, replayed: int) -> str:
    return _encode.encode(ReadyFrame(user, cursor, replayed)).decode()


def refetch(reason: Reason, cursor: str) -> str:
    """The client's position is gone: refetch the inbox over REST, then continue from `cursor`."""
    return _encode.encode(RefetchFrame(reason.value, cursor)).decode()


def pong() -> str:
    return '{"type":"pong"}'


def error(reason: Reason, detail: str) -> str:
    return _encode.encode(ErrorFrame(reason.value, detail)).decode()
