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


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "Europe", "localtime", "posixrules", "../etc", "/etc/passwd"]
)
def test_what_is_not_an_iana_time_zone_is_refused(zone: str) -> None:
    raw = b'{"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "%s"}}' % zone.encode()
    with pytest.raises(wire.InvalidTimezone, match=zone):
        wire.decode(raw)


def test_a_type_repeated_past_the_four_types_is_merged_not_refused() -> None:
    assert wire.decode(b'{"off": ["like", "follow", "comment", "mention", "like", "like"]}').off == [
        "comment",
        "follow",
        "like",
        "mention",
    ]
