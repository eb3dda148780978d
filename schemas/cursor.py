"""The resume cursor (WebSocket frames and REST pages): `EPOCH.N-CHECK`, parsed and written only here.

N numbers the changes of a user's change log from 1 within the log's epoch; CHECK is the stamp
the change was logged with (random per script call, 2^23 to 2^24 - 1), so a cursor names one
change of one history: a number that Redis reused after losing the end of the log (an AOF whose
tail was cut) comes with another check. CHECK 0 is a cursor from before checks existed
(`EPOCH.N-0`); it still names a change logged before then, and nothing else. `-` as epoch: before
the log existed. The change log's scripts hand these three fields over separately
(feeds/changelog.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .errors import Reason, Rejected

NO_EPOCH: Final = "-"
MAX_CHARS: Final = 64
_CURSOR: Final = re.compile(r"([^.]+)\.([0-9]{1,19})(?:-([0-9]{1,19}))?")


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: str
    number: int  # 0: before the first change
    check: int = 0

    @classmethod
    def parse(cls, text: str) -> Cursor:
        found = _CURSOR.fullmatch(text) if len(text) <= MAX_CHARS else None
        if found is None:
            raise Rejected(Reason.MALFORMED, "cursor must be EPOCH.N-CHECK", "/cursor")
        epoch, number, check = found.groups()
        return cls(epoch, int(number), int(check or 0))

    def __str__(self) -> str:
        return f"{self.epoch}.{self.number}-{self.check}"


START: Final = Cursor(NO_EPOCH, 0)
