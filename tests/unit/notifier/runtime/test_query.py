"""Query parameters are read one way by every route (notifier/runtime/query.py)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from notifier.runtime import query
from schemas.errors import Rejected


def _request(query_string: str) -> Request:
    return Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": query_string.encode(), "headers": []}
    )


@pytest.mark.parametrize(
    ("text", "expected"), [("", 20), ("limit=", 20), ("limit=1", 1), ("limit=0100", 100)]
)
def test_an_integer_in_range_or_the_default(text: str, expected: int) -> None:
    assert query.integer(_request(text), "limit", 20, 1, 100) == expected


@pytest.mark.parametrize(
    "text",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=+5",
        "limit=1e2",
        "limit=%EF%BC%95",
        "limit=" + "9" * 4000,
        "limit=5&limit=5",
    ],
)
def test_anything_else_is_refused_with_a_pointer(text: str) -> None:
    with pytest.raises(Rejected) as refused:
        query.integer(_request(text), "limit", 20, 1, 100)
    assert refused.value.pointer == "/limit"


def test_a_parameter_given_twice_says_so() -> None:
    with pytest.raises(Rejected, match="before is given 2 times; give it once"):
        query.param(_request("before=a&before=b"), "before")
    assert query.param(_request("before="), "before") is None
    assert query.param(_request("before=a"), "before") == "a"
