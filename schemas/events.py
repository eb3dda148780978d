"""Version 1 activity events: tagged, frozen structs decoded once at the edge.

`id` is the producer's idempotency key (remembered in its actor's partition: notifier/api/append.py);
`occurred_at` is the event's own time, the last-writer-wins clock for toggles (like/unlike,
follow/unfollow), never arrival time.
"""

from __future__ import annotations

import functools
import operator
import re
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgspec

from .nesting import shallow

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
    """Removes `post` by `actor` (its author) for good from every feed, whatever the order, and
    the notifications about it: those in the author's inbox (likes, comments, mentions on it)
    and the mentions it made (`mentioned`: whom the post mentioned, as the mention event named
    them)."""

    post: Id
    mentioned: Annotated[list[Id], msgspec.Meta(max_length=MAX_MENTIONS)] = []


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
    event: Event = shallow(_decoder.decode, raw)
    return event


def decode_logged(raw: bytes) -> Event:
    """Decode an event the log holds (`encode_event` of one ingest validated): its shape and
    types are checked (a malformed entry raises like `decode_event`), its constraints (id
    patterns, lengths, the time's offset) are not checked twice. msgspec runs each pattern
    through `re`: for a like that was 2.7 of the 3.1 µs the fan-out spent decoding an event."""
    shaped = _logged_decoder.decode(raw)
    event: Event = _LOGGED[type(shaped)](*msgspec.structs.astuple(shaped))
    return event


def _bare(hint: Any) -> Any:
    """`hint` without its constraints (Annotated metadata), also inside lists and unions."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _bare(args[0])
    if origin is list:
        return list[_bare(args[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, map(_bare, args))
    return hint


def _unconstrained(event_type: type[Event], *, array_like: bool = False) -> type[msgspec.Struct]:
    """A struct of `event_type`'s tag and fields, in order, with their defaults but without
    their constraints: what `decode_logged` (and, `array_like`, `decode_stored`) decodes into
    before building the event itself."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(event_type):
        if f.required:
            fields.append((f.name, _bare(f.type)))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, _bare(f.type), msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, _bare(f.type), f.default))
    config = event_type.__struct_config__
    return msgspec.defstruct(
        event_type.__name__,
        fields,
        tag=config.tag,
        tag_field=config.tag_field,
        forbid_unknown_fields=True,
        array_like=array_like,
    )


_LOGGED: Final[dict[type[msgspec.Struct], type[Event]]] = {_unconstrained(t): t for t in EVENT_TYPES}
_logged_decoder: Final = msgspec.json.Decoder(functools.reduce(operator.or_, _LOGGED))


def encode_event(event: Event) -> bytes:
    """The canonical encoding (the contract's JSON): what idempotency fingerprints are taken of,
    and what the log stored before `encode_stored`."""
    return _encoder.encode(event)


# The event log's stored form: a MessagePack array of the type's tag and the fields in their
# declared order (the struct's `array_like` layout), `occurred_at` in UTC as a MessagePack
# timestamp (10 bytes instead of the text's 27-32), or at another offset as its RFC 3339 text so
# the producer's offset survives (what entries written before 2026-12-07 hold whatever the
# offset: both are read). No field names, no quotes: a 10-user mention takes ~130 bytes instead
# of the JSON's ~250, for as long as the log keeps it (`NOTIFIER_FANOUT_RETAIN_MS`).
_TIME_AT: Final = [f.name for f in msgspec.structs.fields(Like)].index("occurred_at")
_STORED: Final[dict[type[msgspec.Struct], type[Event]]] = {
    _unconstrained(t, array_like=True): t for t in EVENT_TYPES
}
_stored_decoder: Final = msgspec.msgpack.Decoder(functools.reduce(operator.or_, _STORED))
_packer: Final = msgspec.msgpack.Encoder()


_TAGS: Final[dict[type[Event], str]] = {t: str(t.__struct_config__.tag) for t in EVENT_TYPES}


def encode_stored(event: Event) -> bytes:
    values: list[Any] = [_TAGS[type(event)], *msgspec.structs.astuple(event)]
    if event.occurred_at.utcoffset():
        # as the contract's JSON writes it (msgspec's C formatting: a tenth of isoformat's cost)
        values[1 + _TIME_AT] = _encoder.encode(event.occurred_at)[1:-1].decode()
    return _packer.encode(values)


def decode_stored(raw: bytes) -> Event:
    """`encode_stored`'s event back, checked like `decode_logged` (shape and types, not the
    constraints ingest checked)."""
    shaped = _stored_decoder.decode(raw)
    event: Event = _STORED[type(shaped)](*msgspec.structs.astuple(shaped))
    return event


def json_schema() -> dict[str, object]:
    """The JSON Schema producers in other languages validate against (schemas/events.v1.json)."""
    schema: dict[str, object] = msgspec.json.schema(Event)
    schema["$id"] = "https://notifier.dev/schemas/events.v1.json"
    schema["title"] = "Notifier activity event, version 1"
    return schema
