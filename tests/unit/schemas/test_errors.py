"""One table maps every reason to an HTTP status and a WebSocket close code; errors carry data."""

from __future__ import annotations

import pytest

from schemas.errors import CODES, ConfigError, NotifierError, Reason, Rejected


def test_every_reason_has_wire_codes() -> None:
    assert set(CODES) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason))
def test_codes_are_in_their_ranges(reason: Reason) -> None:
    http, ws_close = CODES[reason]
    assert 400 <= http <= 599
    assert 4000 <= ws_close <= 4999  # the application range of close codes


def test_reasons_are_their_wire_strings() -> None:
    assert Reason("token_expired") is Reason.TOKEN_EXPIRED
    assert all(r.value == r.value.lower() and " " not in r.value for r in Reason)


def test_rejected_carries_reason_detail_pointer_and_codes() -> None:
    error = Rejected(Reason.TOO_LARGE, "body larger than 10 bytes", "/0/text")
    assert (error.reason, error.detail, error.pointer) == (
        Reason.TOO_LARGE,
        "body larger than 10 bytes",
        "/0/text",
    )
    assert (error.http_status, error.ws_close_code) == (413, 4413)
    assert str(error) == "too_large: body larger than 10 bytes"
    assert Rejected(Reason.MALFORMED, "x").pointer == ""


def test_one_root() -> None:
    assert issubclass(Rejected, NotifierError)
    assert issubclass(ConfigError, NotifierError)
    with pytest.raises(NotifierError):
        raise Rejected(Reason.UNAUTHORIZED, "no token")


@pytest.mark.parametrize(
    ("reason", "http", "ws_close"),
    [
        (Reason.MALFORMED, 400, 4400),
        (Reason.UNAUTHORIZED, 401, 4401),
        (Reason.TOKEN_EXPIRED, 401, 4419),
        (Reason.DUPLICATE, 409, 4409),
        (Reason.CURSOR_EXPIRED, 410, 4410),
        (Reason.OVERLOADED, 503, 4429),
    ],
)
def test_the_codes_clients_depend_on(reason: Reason, http: int, ws_close: int) -> None:
    assert (CODES[reason].http, CODES[reason].ws_close) == (http, ws_close)


def test_the_asyncapi_document_names_every_reason_of_a_close_code() -> None:
    """Several reasons share a close code (4409: duplicate, claimed, decided): the document
    names each, not just the last one of the table."""
    from schemas.asyncapi import document

    closes = document("test")["channels"]["inbox"]["x-close-codes"]
    for reason, codes in CODES.items():
        assert reason.value in closes[str(codes.ws_close)].split(", ")


def test_a_refusal_that_knows_when_to_retry_says_so_in_retry_after() -> None:
    from notifier.api.problems import problem

    assert problem(Rejected(Reason.RATE_LIMITED, "at most 20 reports an hour")).headers["retry-after"] == "1"
    timed = problem(Rejected(Reason.RATE_LIMITED, "at most 20 reports an hour", retry_after_s=1_200))
    assert (timed.status_code, timed.headers["retry-after"]) == (429, "1200")
