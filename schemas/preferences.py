"""A user's notification preferences: the body of `GET`/`PUT /v1/me/preferences`."""

from __future__ import annotations

from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

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

    off: Annotated[list[NotifyType], msgspec.Meta(max_length=4)] = []
    quiet_hours: QuietHours | None = None


DEFAULT: Final = Preferences()
_decoder: Final = msgspec.json.Decoder(Preferences)
_encoder: Final = msgspec.json.Encoder()


class InvalidTimezone(ValueError):
    pass


def decode(raw: bytes) -> Preferences:
    """Decode and validate; raises msgspec errors, or InvalidTimezone for an unknown zone."""
    prefs = _decoder.decode(raw)
    if prefs.quiet_hours is not None:
        try:
            ZoneInfo(prefs.quiet_hours.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidTimezone(f"unknown time zone {prefs.quiet_hours.timezone!r}") from None
    return msgspec.structs.replace(prefs, off=sorted(set(prefs.off)))


def encode(prefs: Preferences) -> bytes:
    return _encoder.encode(prefs)
