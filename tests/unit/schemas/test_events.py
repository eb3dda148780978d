"""Event contracts: what decodes, what is refused, and the exported JSON Schema."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from schemas.events import (
    EVENT_TYPES,
    MAX_MENTIONS,
    MAX_TEXT_CHARS,
    TYPE_NAMES,
    Comment,
    CommentDeleted,
    Event,
    Follow,
    Like,
    Mention,
    PostCreated,
    PostDeleted,
    Unfollow,
    Unlike,
    decode_event,
    decode_logged,
    decode_stored,
    encode_event,
    encode_stored,
    is_id,
    json_schema,
    type_name,
)

AT = "2024-05-01T12:00:00Z"
VALID: dict[str, dict[str, Any]] = {
    "like": {"post": "p1", "owner": "olga"},
    "unlike": {"post": "p1", "owner": "olga"},
    "follow": {"user": "olga"},
    "unfollow": {"user": "olga"},
    "comment": {"post": "p1", "owner": "olga", "comment": "c1", "text": "nice"},
    "comment_deleted": {"post": "p1", "owner": "olga", "comment": "c1", "mentioned": ["bob"]},
    "mention": {"post": "p1", "users": ["bob", "carol"], "comment": "c1", "text": "@bob @carol"},
    "post_created": {"post": "p1", "kind": "photo", "text": "sunset", "visibility": "followers"},
    "post_deleted": {"post": "p1"},
}
STRUCTS = {
    "like": Like,
    "unlike": Unlike,
    "follow": Follow,
    "unfollow": Unfollow,
    "comment": Comment,
    "comment_deleted": CommentDeleted,
    "mention": Mention,
    "post_created": PostCreated,
    "post_deleted": PostDeleted,
}


def body(kind: str, **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "id": "e-1", "actor": "alice", "occurred_at": AT, **VALID[kind]}
    out.update(changes)
    return out


def decode(value: dict[str, Any]) -> Event:
    return decode_event(orjson.dumps(value))


def test_the_samples_cover_every_event_type() -> None:
    assert set(VALID) == TYPE_NAMES == set(STRUCTS)
    assert len(EVENT_TYPES) == 9


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_type_decodes_to_its_struct_and_round_trips(kind: str) -> None:
    event = decode_event(orjson.dumps(body(kind)))
    assert type(event) is STRUCTS[kind]
    assert type_name(event) == kind
    assert event.id == "e-1" and event.actor == "alice"
    assert event.at_ms == 1_714_564_800_000
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize("kind", sorted(VALID))
def test_the_log_decodes_every_type_to_the_same_event(kind: str) -> None:
    event = decode_event(orjson.dumps(body(kind)))
    logged = decode_logged(encode_event(event))
    assert type(logged) is STRUCTS[kind] and logged == event


def test_the_log_takes_defaults_and_refuses_a_malformed_entry_without_the_constraints() -> None:
    minimal = {k: v for k, v in body("comment_deleted").items() if k != "mentioned"}
    assert decode_logged(orjson.dumps(minimal)) == decode(minimal)
    for malformed in (b"{", orjson.dumps(body("like", zzz=1)), orjson.dumps(body("like", id=7))):
        with pytest.raises(msgspec.DecodeError):
            decode_logged(malformed)
    with pytest.raises(msgspec.ValidationError):
        decode_logged(orjson.dumps({k: v for k, v in body("like").items() if k != "owner"}))
    # what ingest refused is not checked again: the log holds only what it accepted
    unchecked = decode_logged(orjson.dumps(body("like", post="a b")))
    assert isinstance(unchecked, Like) and unchecked.post == "a b"


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize("at", [AT, "2024-05-01T14:00:00.123456+02:00", "2024-05-01T06:30:00-05:30"])
def test_the_stored_form_gives_back_the_same_event_offset_included(kind: str, at: str) -> None:
    event = decode(body(kind, occurred_at=at))
    stored = decode_stored(encode_stored(event))
    assert type(stored) is STRUCTS[kind] and stored == event
    assert stored.occurred_at.utcoffset() == event.occurred_at.utcoffset()
    assert encode_event(stored) == encode_event(event)  # the same fingerprint, read back or not


def test_the_stored_form_is_smaller_than_the_json() -> None:
    mention = decode(body("mention", users=[f"user-{i:04}" for i in range(10)], comment=None, text=""))
    assert len(encode_stored(mention)) < 0.7 * len(encode_event(mention))
    # a UTC time is a MessagePack timestamp, ~20 bytes less than its text
    at_noon = {"users": ["u1"], "occurred_at": "2024-05-01T12:00:00.123456Z"}
    utc, offset = (
        decode(body("mention", **at_noon)),
        decode(body("mention", **at_noon | {"occurred_at": "2024-05-01T14:00:00.123456+02:00"})),
    )
    assert utc.occurred_at == offset.occurred_at
    assert len(encode_stored(offset)) - len(encode_stored(utc)) >= 20


def test_an_entry_of_before_with_its_time_as_text_is_read() -> None:
    """Entries written before 2026-12-07 hold a UTC time as text too."""
    event = decode(body("like", occurred_at="2024-05-01T12:00:00.5Z"))
    values = msgspec.msgpack.decode(encode_stored(event))
    values[3] = "2024-05-01T12:00:00.5Z"
    assert decode_stored(msgspec.msgpack.encode(values)) == event


def test_a_malformed_stored_event_is_refused() -> None:
    like = decode(body("like"))
    good = msgspec.msgpack.decode(encode_stored(like))
    for malformed in (b"\x93", msgspec.msgpack.encode(["like", "e-1"]), msgspec.msgpack.encode([*good, "x"])):
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            decode_stored(malformed)
    with pytest.raises(msgspec.ValidationError):
        decode_stored(msgspec.msgpack.encode(["nope", *good[1:]]))


def test_optional_fields_take_their_defaults() -> None:
    comment = decode({k: v for k, v in body("comment").items() if k != "text"})
    assert isinstance(comment, Comment) and comment.text == ""
    minimal = {k: v for k, v in body("mention").items() if k not in {"comment", "text"}}
    mention = decode(minimal)
    assert isinstance(mention, Mention) and mention.comment is None and mention.text == ""
    post = decode({"type": "post_created", "id": "e-1", "actor": "alice", "occurred_at": AT, "post": "p1"})
    assert post == PostCreated("e-1", "alice", post.occurred_at, "p1", "text", "", "public")
    deleted = decode({k: v for k, v in body("comment_deleted").items() if k != "mentioned"})
    assert isinstance(deleted, CommentDeleted) and deleted.mentioned == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "poll"), ("visibility", "friends"), ("text", "x" * (MAX_TEXT_CHARS + 1)), ("post", "a b")],
)
def test_a_post_refuses_what_its_contract_does_not_allow(field: str, value: str) -> None:
    event = body("post_created")
    event[field] = value
    with pytest.raises(msgspec.ValidationError, match=f"at `\\$.{field}`"):
        decode(event)


def test_an_offset_is_honoured_in_the_event_clock() -> None:
    event = decode(body("like", occurred_at="2024-05-01T14:00:00+02:00"))
    assert isinstance(event, Like)
    assert event.at_ms == 1_714_564_800_000


def test_decoded_events_are_frozen() -> None:
    event = decode(body("like"))
    with pytest.raises(AttributeError):
        event.actor = "mallory"  # type: ignore[misc]


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unknown_fields_are_refused(kind: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `extra`"):
        decode(body(kind, extra=1))


@pytest.mark.parametrize("kind", sorted(VALID))
def test_missing_required_fields_are_refused(kind: str) -> None:
    for field in ("id", "actor", "occurred_at"):
        value = body(kind)
        del value[field]
        with pytest.raises(msgspec.ValidationError, match=f"missing required field `{field}`"):
            decode(value)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("like", "id", 12),
        ("like", "actor", None),
        ("follow", "user", ["olga"]),
        ("comment", "text", 5),
        ("mention", "users", "bob"),
        ("mention", "comment", 3),
        ("comment_deleted", "mentioned", "bob"),
        ("like", "occurred_at", 1_714_564_800),
    ],
)
def test_wrong_types_are_refused(kind: str, field: str, value: object) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"at `\\$.{field}"):
        decode(body(kind, **{field: value}))


# a final newline: `$` alone matches before it (issue 10); Unicode digits and letters: not ASCII
BAD_IDS = ["a{b}", "a b", "", "x" * 129, "a/b", "é", "a\nb", "u}", "c1\n", "\n", "x\r", "٣", "²", "\u212a"]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("like", "id"),
        ("like", "actor"),
        ("like", "post"),
        ("like", "owner"),
        ("follow", "user"),
        ("comment", "comment"),
        ("comment_deleted", "comment"),
    ],
)
def test_ids_outside_the_safe_alphabet_are_refused(kind: str, field: str, bad: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(body(kind, **{field: bad}))


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ids_inside_lists_are_checked_too(bad: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$.users\[1\]"):
        decode(body("mention", users=["bob", bad]))
    with pytest.raises(msgspec.ValidationError, match=r"\$.mentioned\[0\]"):
        decode(body("comment_deleted", mentioned=[bad]))


@pytest.mark.parametrize("bad", BAD_IDS)
def test_is_id_agrees_with_the_contract(bad: str) -> None:
    assert not is_id(bad)
    assert is_id("Az09_.:@-") and is_id("x" * 128)


def test_the_whole_safe_alphabet_and_128_chars_are_accepted() -> None:
    event = decode(body("like", id="x" * 128, actor="Az09_.:@-"))
    assert isinstance(event, Like) and len(event.id) == 128


@pytest.mark.parametrize("when", ["2024-05-01T12:00:00", "2024-05-01", "yesterday", ""])
def test_naive_or_unparseable_times_are_refused(when: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="occurred_at"):
        decode(body("like", occurred_at=when))


@pytest.mark.parametrize("kind", ["comment", "mention"])
def test_text_is_capped(kind: str) -> None:
    assert decode(body(kind, text="x" * MAX_TEXT_CHARS))
    with pytest.raises(msgspec.ValidationError, match="text"):
        decode(body(kind, text="x" * (MAX_TEXT_CHARS + 1)))


def test_mentions_are_capped_and_never_empty() -> None:
    users = [f"u{i}" for i in range(MAX_MENTIONS + 1)]
    assert decode(body("mention", users=users[:MAX_MENTIONS]))
    with pytest.raises(msgspec.ValidationError, match="users"):
        decode(body("mention", users=users))
    with pytest.raises(msgspec.ValidationError, match="users"):
        decode(body("mention", users=[]))
    with pytest.raises(msgspec.ValidationError, match="mentioned"):
        decode(body("comment_deleted", mentioned=users))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "poke", "id": "e-1", "actor": "alice", "occurred_at": "2024-05-01T12:00:00Z"}',
        b'{"id": "e-1", "actor": "alice", "occurred_at": "2024-05-01T12:00:00Z", "user": "olga"}',
        b'{"type": "LIKE", "id": "e-1", "actor": "a", "occurred_at": "2024-05-01T12:00:00Z"}',
        b"[]",
        b'"like"',
    ],
)
def test_unknown_or_missing_types_and_non_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event(raw)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"type": "like",}'])
def test_malformed_json_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_event(raw)


def test_json_schema_lists_all_seven_types() -> None:
    schema = json_schema()
    assert schema["$id"] and schema["title"]
    discriminator = schema["discriminator"]
    assert isinstance(discriminator, dict)
    assert discriminator["propertyName"] == "type"
    assert set(discriminator["mapping"]) == TYPE_NAMES
    definitions = schema["$defs"]
    assert isinstance(definitions, dict)
    tags = {d["properties"]["type"]["enum"][0] for d in definitions.values()}
    assert tags == TYPE_NAMES
    assert all(d["additionalProperties"] is False for d in definitions.values())
    assert orjson.loads(orjson.dumps(schema)) == schema  # plain JSON, exportable as is
