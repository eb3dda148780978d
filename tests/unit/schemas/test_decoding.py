"""msgspec's decode errors become refusals in the product's words, pointing at the member at fault
(this breaks loudly if a msgspec upgrade rewords a message: schemas/decoding.py reads them)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from schemas import protocol
from schemas.decoding import refusal
from schemas.errors import Reason, Rejected
from schemas.events import decode_event

VALID: dict[str, Any] = {
    "type": "like",
    "id": "v-1",
    "actor": "amy",
    "occurred_at": "2026-01-01T12:00:00Z",
    "post": "p",
    "owner": "bo",
}


def refused(body: object) -> Rejected:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(msgspec.DecodeError) as caught:
        decode_event(raw)
    return refusal(caught.value, "/3", body=raw)


@pytest.mark.parametrize(
    ("body", "detail", "pointer"),
    [
        ({**VALID, "extra": 1}, "extra is not a field of this object", "/3/extra"),
        ({**VALID, "id": "a{b}"}, "id must be 1-128 characters of A-Z a-z 0-9 _ . : @ -", "/3/id"),
        ({k: v for k, v in VALID.items() if k != "owner"}, "owner is required", "/3/owner"),
        ({**VALID, "post": 7}, "post must be a string, not an integer", "/3/post"),
        (
            {**VALID, "occurred_at": "2026-01-01T12:00:00"},
            "occurred_at needs a UTC offset (Z or +hh:mm)",
            None,
        ),
        (
            {**VALID, "occurred_at": "soon"},
            "occurred_at must be an RFC 3339 time (2026-01-31T12:00:00Z)",
            None,
        ),
        (
            {**VALID, "type": "comment", "comment": "c", "text": "x" * 2001},
            "text must be at most 2000 characters long",
            None,
        ),
        ({**VALID, "type": "poke"}, "type 'poke' is not one of the documented values", "/3/type"),
        ({**VALID, "type": 3}, "type must be a string", "/3/type"),  # not msgspec's "Expected `str`"
        ({**VALID, "type": "mention", "users": [], "owner": None}, None, None),
        ([VALID], "the body must be an object, not an array", "/3"),
    ],
)
def test_contract_breaks_in_product_words(body: object, detail: str | None, pointer: str | None) -> None:
    error = refused(body)
    assert error.reason is Reason.INVALID
    assert "`" not in error.detail and not error.detail.startswith(("Expected", "Object", "Invalid"))
    if detail is not None:
        assert error.detail == detail
    if pointer is not None:
        assert error.pointer == pointer


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"type": "like"', "body is not valid JSON: it ends too early"),
        (b"{x}", "body is not valid JSON (at byte 1)"),
        (  # a complete body: msgspec calls half a surrogate pair "truncated"
            b'{"type": "\\ud800x"}',
            "body is not valid JSON: it ends too early, or escapes a lone UTF-16 surrogate (\\ud800-\\udfff)",
        ),
    ],
)
def test_bad_json_is_malformed(raw: bytes, detail: str) -> None:
    error = refused(raw)
    assert (error.reason, error.detail, error.pointer) == (Reason.MALFORMED, detail, "/3")


def test_client_frames_too() -> None:
    with pytest.raises(msgspec.DecodeError) as caught:
        protocol.decode_client(b'{"type": "auth", "token": 5}')
    assert refusal(caught.value).detail == "token must be a string, not an integer"


def test_a_union_of_kinds_is_named_in_words() -> None:
    with pytest.raises(msgspec.DecodeError) as caught:
        protocol.decode_client('{"type": "auth", "token": "t", "cursor": 5}')
    error = refusal(caught.value)
    assert (error.detail, error.pointer) == ("cursor must be a string or null, not an integer", "/cursor")
