"""The preferences document: what decodes, what is refused, and its canonical form."""

from __future__ import annotations

import msgspec
import pytest

from schemas import preferences as wire
from schemas.preferences import Preferences, QuietHours


def test_the_default_turns_nothing_off() -> None:
    assert wire.decode(b"{}") == wire.DEFAULT == Preferences([], None)


def test_types_off_are_kept_once_in_order_and_quiet_hours_round_trip() -> None:
    quiet = b'{"start": "22:00", "end": "07:30", "timezone": "Europe/Paris"}'
    raw = b'{"off": ["mention", "like", "mention"], "quiet_hours": ' + quiet + b"}"
    prefs = wire.decode(raw)
    assert prefs == Preferences(["like", "mention"], QuietHours("22:00", "07:30", "Europe/Paris"))
    assert wire.decode(wire.encode(prefs)) == prefs


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"off": ["likes"]}', "$.off[0]"),
        (b'{"off": "like"}', "$.off"),
        (b'{"quiet_hours": {"start": "24:00", "end": "07:00"}}', "$.quiet_hours.start"),
        (b'{"quiet_hours": {"start": "7:00", "end": "07:00"}}', "$.quiet_hours.start"),
        (b'{"quiet_hours": {"start": "22:00"}}', "end"),
        (b'{"mute": []}', "unknown field"),
    ],
)
def test_what_breaks_the_contract_is_refused_precisely(raw: bytes, where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$").replace("[", r"\[")):
        wire.decode(raw)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(wire.InvalidTimezone, match="Mars/Olympus"):
        wire.decode(b'{"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}}')
