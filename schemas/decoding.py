"""msgspec's decode errors in the product's words: `refusal(exc)` is the one place that reads
msgspec's message text (it has no structured error), so a msgspec upgrade that rewords a message
breaks tests/unit/schemas/test_decoding.py, not the API's answers."""

from __future__ import annotations

import re
from typing import Final

import msgspec

from .errors import Reason, Rejected
from .events import ID_PATTERN
from .nesting import TOO_DEEP, shallow

_AT: Final = re.compile(r" - at `\$(.*)`\Z", re.DOTALL)
_KINDS: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}
_ID_WORDS: Final = "1-128 characters of A-Z a-z 0-9 _ . : @ -"
_PATTERNS: Final = {ID_PATTERN: _ID_WORDS, repr(ID_PATTERN)[1:-1]: _ID_WORDS}  # msgspec shows the repr
# (message regex, detail template); the template gets the match's groups by name
_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern + r"\Z", re.DOTALL), template)  # a field's name may hold a newline
    for pattern, template in (
        (r"Object missing required field `(?P<field>.*)`", "{field} is required"),
        (r"Object contains unknown field `(?P<field>.*)`", "{field} is not a field of this object"),
        (r"Expected `(?P<want>\w+(?: \| \w+)*)`, got `(?P<got>\w+)`", "{where} must be {want}, not {got}"),
        (r"Expected `(?P<want>\w+(?: \| \w+)*)`", "{where} must be {want}"),  # (a tag: the kind's field)
        (r"Expected `str` of length >= (?P<n>\d+)", "{where} must be at least {n} characters long"),
        (r"Expected `str` of length <= (?P<n>\d+)", "{where} must be at most {n} characters long"),
        (r"Expected `array` of length >= (?P<n>\d+)", "{where} must hold at least {n} items"),
        (r"Expected `array` of length <= (?P<n>\d+)", "{where} must hold at most {n} items"),
        (r"Expected `(?:int|float)` >= (?P<n>[-\d.]+)", "{where} must be at least {n}"),
        (r"Expected `(?:int|float)` <= (?P<n>[-\d.]+)", "{where} must be at most {n}"),
        (r"Expected `str` matching regex '(?P<regex>.*)'", "{where} must be {regex}"),
        (r"Invalid (?:enum )?value (?P<value>.*)", "{where} {value} is not one of the documented values"),
        (r"Expected `datetime`, got `str`", "{where} must be an RFC 3339 time with an offset"),
        (r"Invalid RFC3339 encoded datetime", "{where} must be an RFC 3339 time (2026-01-31T12:00:00Z)"),
        (r"Expected `datetime` with a timezone component", "{where} needs a UTC offset (Z or +hh:mm)"),
        (r"Integer value out of range", "{where} is out of range"),
    )
)


def refusal(exc: msgspec.DecodeError, pointer: str = "", *, body: bytes | str | None = None) -> Rejected:
    """The refusal for a body msgspec would not decode; `pointer` is where that body sits in
    the request (a batch's `/3`), extended to the offending member. Given the `body`, one that
    is not JSON at all is malformed wherever its first type error lies (a typed decode stops
    at that error before it reaches the broken syntax)."""
    if isinstance(exc, msgspec.ValidationError) and body is not None:
        try:
            shallow(msgspec.json.decode, body)
        except msgspec.DecodeError as syntax:
            exc = syntax
    if not isinstance(exc, msgspec.ValidationError):
        return Rejected(Reason.MALFORMED, _malformed(str(exc), body), pointer)
    message = str(exc)
    found = _AT.search(message)
    path = _pointer(found.group(1)) if found else ""
    message = _AT.sub("", message)
    for rule, template in _RULES:
        match = rule.match(message)
        if match is None:
            continue
        fields = match.groupdict()
        if "field" in fields:  # point at the missing or unknown member, not at its object
            path += "/" + fields["field"].replace("~", "~0").replace("/", "~1")
        fields["want"] = " or ".join(_KINDS.get(k, k) for k in fields.get("want", "").split(" | "))
        fields["got"] = _KINDS.get(fields.get("got", ""), fields.get("got", ""))
        fields["regex"] = _PATTERNS.get(fields.get("regex", ""), "in the documented format")
        return Rejected(Reason.INVALID, template.format(where=_where(path), **fields), pointer + path)
    return Rejected(Reason.INVALID, message.replace("`", ""), pointer + path)


def _where(path: str) -> str:
    """A member's name for a detail: `/quiet_hours/start` → `start`, `/ids/0` → `ids[0]`."""
    if not path:
        return "the body"
    parts = path.split("/")[1:]
    indexes = ""
    while parts and parts[-1].isdecimal():
        indexes = f"[{parts.pop()}]" + indexes
    return (parts[-1] if parts else "item") + indexes


_SURROGATE: Final = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _malformed(message: str, body: bytes | str | None = None) -> str:
    if message == TOO_DEEP:
        return "body is nested too deeply to be an object we take"
    if message.startswith("Input data was truncated"):
        # (msgspec says so of a string escaping half of a UTF-16 surrogate pair, too)
        raw = body.encode() if isinstance(body, str) else body
        if raw is not None and _SURROGATE.search(raw):
            return (
                "body is not valid JSON: it ends too early, or escapes a lone UTF-16 surrogate "
                "(\\ud800-\\udfff)"
            )
        return "body is not valid JSON: it ends too early"
    byte = re.search(r"\(byte (\d+)\)\Z", message)
    return "body is not valid JSON" + (f" (at byte {byte.group(1)})" if byte else "")


def _pointer(path: str) -> str:
    """msgspec's `.a[0].b` → `/a/0/b`."""
    return re.sub(r"\[([0-9]+)\]", r"/\1", path).replace(".", "/")
