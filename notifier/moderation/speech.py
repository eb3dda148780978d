"""Who a text speaks to, and what it only reports: quoted spans set apart from the writer's own
words, and the places where the writer addresses someone ('you', 'ur', '@name')."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from .normalize import Canonical, canonical, fold

# "…", “…”, «…», ‘…’, and '…' that opens at a word start and closes at a word end (so the
# apostrophes in "don't" and "you're" open nothing)
_QUOTED: Final = re.compile(r"\"[^\"]*\"|“[^”]*”|«[^»]*»|‘[^’]*’|(?<![\w'])'[^']+'(?![\w'])")
_MENTION: Final = re.compile(r"(?<![\w@])@[a-z0-9_][a-z0-9_.]*")
MIN_OWN_WORDS: Final = 3  # a text that is all quote speaks for its writer
SECOND_PERSON: Final = frozenset(
    {"you", "u", "ya", "ur", "your", "youre", "yours", "yourself", "urself", "yourselves", "thou"}
)
# 'you know', 'thank you', 'see you': 'you' that addresses nobody in particular
_NOT_ADDRESS: Final = re.compile(r"\b(?:you know|you see|ya know|mind you|thank you|see you|love you)\b")


@dataclass(frozen=True, slots=True)
class Speech:
    outside: str  # the folded text outside quotes (links are read from it)
    own: Canonical  # the writer's own words: outside quotes, each @name as the word `atmention`
    quoted: Canonical  # what the text quotes ("" when the quote is the whole text)
    mentions: int  # @names outside quotes

    @property
    def is_reporting(self) -> bool:
        return bool(self.quoted.text)


@lru_cache(maxsize=4096)
def speech(text: str) -> Speech:
    folded = fold(text)
    quotes = _QUOTED.findall(folded)
    outside = _QUOTED.sub(" ", folded)
    if quotes and len(canonical(outside).words) < MIN_OWN_WORDS:
        outside, quotes = folded, []
    mentions = len(_MENTION.findall(outside))
    marked = _MENTION.sub(" atmention ", outside)  # one word, no leetspeak turned into a name
    own = canonical(marked)
    return Speech(outside=outside, own=own, quoted=canonical(" ".join(quotes)), mentions=mentions)


def addressed_at(own: Canonical) -> list[int]:
    """Word positions in `own` where the writer addresses someone."""
    text = _NOT_ADDRESS.sub(lambda m: " ".join("x" for _ in m.group().split()), own.text)
    return [i for i, word in enumerate(text.split()) if word in SECOND_PERSON or word == "atmention"]
