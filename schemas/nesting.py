"""Deeply nested JSON refused as malformed: msgspec raises RecursionError, not DecodeError, for
JSON nested deeper than Python's recursion limit (about 1,000 levels: 2 KB of `[`), even where
the value is an unknown field it only skips. Every decode of bytes a caller sent goes through
`shallow`, so such a body is answered like any other malformed one instead of with a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec

TOO_DEEP: Final = "JSON nested too deeply"

T = TypeVar("T")


def shallow(decode: Callable[[Any], T], raw: bytes | str) -> T:
    try:
        return decode(raw)
    except RecursionError:
        raise msgspec.DecodeError(TOO_DEEP) from None
