"""Canonical text for matching: look-alike characters, accents, leetspeak and split words undone.

The blocklist compiles its entries through the same functions, so an entry and an evasion of it
meet in the middle; the rules never match raw text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

# Look-alikes NFKC leaves alone (Cyrillic, Greek, Armenian, IPA, Latin small capitals), after
# casefolding: Unicode's confusables.txt entries that map to one ASCII letter.
_CONFUSABLES: Final = str.maketrans(
    {
        "а": "a", "ɑ": "a", "α": "a", "ᴀ": "a",
        "в": "b", "ь": "b", "ʙ": "b", "β": "b",
        "с": "c", "ϲ": "c", "ᴄ": "c",
        "ԁ": "d", "ᴅ": "d",
        "е": "e", "ё": "e", "є": "e", "ε": "e", "ᴇ": "e",
        "ғ": "f", "ϝ": "f",
        "ɡ": "g", "ԍ": "g", "ɢ": "g",
        "һ": "h", "н": "h", "ʜ": "h", "η": "n",
        "і": "i", "ї": "i", "ι": "i", "ɪ": "i", "ı": "i", "ӏ": "l",
        "ј": "j", "ϳ": "j",
        "к": "k", "κ": "k", "ᴋ": "k",
        "ʟ": "l",
        "м": "m", "ᴍ": "m",
        "п": "n", "ո": "n", "ɴ": "n",
        "о": "o", "ο": "o", "σ": "o", "օ": "o", "ᴏ": "o",
        "р": "p", "ρ": "p", "ᴘ": "p",
        "ԛ": "q",
        "г": "r", "ʀ": "r",
        "ѕ": "s", "ꜱ": "s",
        "т": "t", "τ": "t", "ᴛ": "t",
        "ս": "u", "υ": "u", "ᴜ": "u",
        "ѵ": "v", "ν": "v", "ᴠ": "v",
        "ԝ": "w", "ѡ": "w", "ω": "w", "ᴡ": "w",
        "х": "x", "χ": "x",
        "у": "y", "ү": "y", "γ": "y", "ʏ": "y",
        "ᴢ": "z",
    }
)  # fmt: skip
_LEET: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l"}
)  # fmt: skip
_EDGE_PUNCTUATION: Final = ".,;:!?)]}\"'“”‘’«»…([{"
_PARTS: Final = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """NFKC (full-width, math and circled letters), casefold, look-alikes, accents and invisible
    characters removed. Keeps spacing and punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CONFUSABLES)
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (c for c in decomposed if unicodedata.category(c) not in {"Mn", "Cf"})
    return unicodedata.normalize("NFC", "".join(kept))


def _token_parts(raw: str) -> list[str]:
    token = raw.strip(_EDGE_PUNCTUATION)
    if not token:
        return []
    if any(c.isalpha() for c in token):
        token = token.translate(_LEET)  # 'sh1t', 'a$$'; a bare number stays a number
    parts = _PARTS.findall(token)
    if len(parts) >= 3 and all(len(p) == 1 for p in parts):
        return ["".join(parts)]  # f.u.c.k, f-u-c-k
    return parts


@dataclass(frozen=True, slots=True)
class Canonical:
    """`words` joined by single spaces: only a-z, 0-9 and spaces."""

    text: str

    @property
    def words(self) -> list[str]:
        return self.text.split()


@lru_cache(maxsize=4096)  # pure; every rule and the duplicate counter ask for the same texts
def canonical(text: str) -> Canonical:
    words: list[str] = []
    for raw in fold(text).split():
        words += _token_parts(raw)
    return Canonical(" ".join(words))


def spaced_runs_joined(words: list[str]) -> str:
    """Runs of three or more one-letter words joined ('f u c k off' -> 'fuck off'): what a
    word-level classifier should see."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        out += ["".join(run)] if len(run) >= 3 else run
        run = []
        if word:
            out.append(word)
    return " ".join(out)
