"""Version 1 activity events: tagged, frozen structs decoded once at the edge.

`id` is the producer's idempotency key; `occurred_at` is the event's own time, the
last-writer-wins clock for toggles (like/unlike, follow/unfollow), never arrival time.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Final, Literal, TypeAlias

import msgspec

# `$` alone would also match before a final newline in Python (msgspec searches with `re`);
# `(?!\n)` closes that, and the pattern stays valid ECMA regex for the exported JSON Schema.
ID_PATTERN: Final = r"^[A-Za-z0-9_.:@-]{1,128}$(?!\n)"
MAX_TEXT_CHARS: Final = 2_000
MAX_MENTIONS: Final = 50

Id = Annotated[
    str,
    msgspec.Meta(pattern=ID_PATTERN, description="1-128 chars of A-Z a-z 0-9 _ . : @ -"),
]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
Instant = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with offset")]
Mentioned = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_MENTIONS)]


class _Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    id: Id
    actor: Id
    occurred_at: Instant

    @property
    def at_ms(self) -> int:
        return int(self.occurred_at.timestamp() * 1000)


class Like(_Base, frozen=True, tag="like"):
    """`actor` liked `post`, which belongs to `owner` (the one notified)."""

    post: Id
    owner: Id


class Unlike(_Base, frozen=True, tag="unlike"):
    """Undoes a like of `post` by `actor`; the latest of the two by `occurred_at` wins."""

    post: Id
    owner: Id


class Follow(_Base, frozen=True, tag="follow"):
    """`actor` followed `user` (the one notified)."""

    user: Id


class Unfollow(_Base, frozen=True, tag="unfollow"):
    """Undoes a follow; the latest of the two by `occurred_at` wins."""

    user: Id


class Comment(_Base, frozen=True, tag="comment"):
    """`actor` wrote `comment` on `post`, which belongs to `owner`."""

    post: Id
    owner: Id
    comment: Id
    text: Text = ""


class CommentDeleted(_Base, frozen=True, tag="comment_deleted"):
    """Retracts `comment` for good (delete wins whatever the order), and the mentions made in it."""

    post: Id
    owner: Id
    comment: Id
    mentioned: Annotated[list[Id], msgspec.Meta(max_length=MAX_MENTIONS)] = []


class Mention(_Base, frozen=True, tag="mention"):
    """`actor` mentioned `users` in `post`, or in `comment` on it when given."""

    post: Id
    users: Mentioned
    comment: Id | None = None
    text: Text = ""


PostKind = Literal["text", "photo", "video", "link"]
Visibility = Literal["public", "followers"]


class PostCreated(_Base, frozen=True, tag="post_created"):
    """`actor` (the author) published `post`; it goes to the home feeds of their followers.
    `visibility` public or followers-only: both reach followers' feeds."""

    post: Id
    kind: PostKind = "text"
    text: Text = ""
    visibility: Visibility = "public"


class PostDeleted(_Base, frozen=True, tag="post_deleted"):
    """Removes `post` by `actor` (its author) for good from every feed, whatever the order."""

    post: Id


Event: TypeAlias = (
    Like | Unlike | Follow | Unfollow | Comment | CommentDeleted | Mention | PostCreated | PostDeleted
)
EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    Like,
    Unlike,
    Follow,
    Unfollow,
    Comment,
    CommentDeleted,
    Mention,
    PostCreated,
    PostDeleted,
)
TYPE_NAMES: Final[frozenset[str]] = frozenset(str(t.__struct_config__.tag) for t in EVENT_TYPES)

_ID: Final = re.compile(ID_PATTERN)
_decoder: Final = msgspec.json.Decoder(Event)
_encoder: Final = msgspec.json.Encoder()


def is_id(text: str) -> bool:
    """Whether `text` is an id by the events' contract (every id outside an event is checked so)."""
    return _ID.fullmatch(text) is not None


def type_name(event: Event) -> str:
    return str(event.__struct_config__.tag)


def decode_event(raw: bytes) -> Event:
    """Decode and validate one event; raises msgspec.ValidationError or DecodeError."""
    event: Event = _decoder.decode(raw)
    return event


def encode_event(event: Event) -> bytes:
    """The canonical encoding: what the log stores and what fingerprints are taken of."""
    return _encoder.encode(event)


def json_schema() -> dict[str, object]:
    """The JSON Schema producers in other languages validate against (schemas/events.v1.json)."""
    schema: dict[str, object] = msgspec.json.schema(Event)
    schema["$id"] = "https://notifier.dev/schemas/events.v1.json"
    schema["title"] = "Notifier activity event, version 1"
    return schema
