"""A user's notification preferences: the body of `GET`/`PUT /v1/me/preferences`."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Final, Literal
from zoneinfo import available_timezones

import msgspec

from .nesting import shallow

NotifyType = Literal["like", "follow", "comment", "mention"]
Clock = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24-hour")]


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Stored for offline delivery (not acted on yet): from `start` to `end` in `timezone`
    (an IANA name); `end` before `start` spans midnight."""

    start: Clock
    end: Clock
    timezone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"


class Preferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`off`: the notification types the user does not want (their events no longer reach the
    inbox; undoing what did reach it still does)."""

    # each type kept once (decode): a few repeats are merged rather than refused
    off: Annotated[list[NotifyType], msgspec.Meta(max_length=16)] = []
    quiet_hours: QuietHours | None = None


DEFAULT: Final = Preferences()
_decoder: Final = msgspec.json.Decoder(Preferences)
_encoder: Final = msgspec.json.Encoder()


class InvalidTimezone(ValueError):
    pass


@cache
def _zones() -> frozenset[str]:
    """The IANA zone names: not any path ZoneInfo would open (a folder such as `Europe`, or the
    system's `localtime` and `posixrules` files)."""
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"})


def decode(raw: bytes) -> Preferences:
    """Decode and validate; raises msgspec errors, or InvalidTimezone for an unknown zone."""
    prefs = shallow(_decoder.decode, raw)
    if prefs.quiet_hours is not None and prefs.quiet_hours.timezone not in _zones():
        raise InvalidTimezone(f"unknown time zone {prefs.quiet_hours.timezone!r}")
    return msgspec.structs.replace(prefs, off=sorted(set(prefs.off)))


def encode(prefs: Preferences) -> bytes:
    return _encoder.encode(prefs)
