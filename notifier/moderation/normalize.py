"""Canonical text for matching: look-alike characters, accents, leetspeak and split words undone.

The blocklist compiles its entries through the same functions, so an entry and an evasion of it
meet in the middle; the rules never match raw text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
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
        # Coptic, Cherokee and Canadian syllabics letters that pass for Latin ones ('kⲩs', 'ꮯunt',
        # 'ᑕᑌᑎT'); casefolding turns Cherokee small letters into these capitals
        "ⲁ": "a", "ⲃ": "b", "ⲅ": "r", "ⲉ": "e", "ⲓ": "i", "ⲕ": "k", "ⲟ": "o", "ⲣ": "p", "ⲥ": "c",
        "ⲧ": "t", "ⲩ": "y", "ⲭ": "x", "ⲱ": "w",
        "Ꭺ": "a", "Ꮯ": "c", "Ꭼ": "e", "Ꮋ": "h", "Ꭵ": "i", "Ꮶ": "k", "Ꮃ": "w", "Ꮇ": "m", "Ꮪ": "s",
        "Ꮓ": "z", "Ꭰ": "d",
        "ᑕ": "c", "ᑌ": "u", "ᑎ": "n", "ᑭ": "p", "ᗷ": "b", "ᗪ": "d", "ᕼ": "h", "ᒪ": "l", "ᗰ": "m",
        "ᔕ": "s", "ᐯ": "v", "ᗯ": "w", "ᘔ": "z", "ᖇ": "r", "ᓰ": "i",
        # Latin letters with hooks that NFKD leaves whole ('ƒuck')
        "ƒ": "f", "ʄ": "f", "ɠ": "g", "ƙ": "k", "ɓ": "b", "ɗ": "d", "ƭ": "t", "ʈ": "t", "ƈ": "c",
    }
    # negative squared letters ('🅵🆄🅲🅺': NFKC leaves them) and regional indicators ('🇰🇾🇸')
    | {chr(0x1F170 + i): chr(ord("a") + i) for i in range(26)}
    | {chr(0x1F1E6 + i): chr(ord("a") + i) for i in range(26)}
)  # fmt: skip
_LEET: Final = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "6": "g", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "£": "l"}
)  # fmt: skip
_EDGE_PUNCTUATION: Final = ".,;:!?)]}\"'“”‘’«»…([{"
_PARTS: Final = re.compile(r"[a-z0-9]+")
# Words people write with letters starred out ('f***', 'sh*t', 'a**hole'): a token with stars
# between letters becomes the word of its length whose visible letters fit.
_MASKABLE: Final = (
    "fuck", "fucking", "fucker", "fucked", "fuckin", "motherfucker", "shit", "shitty", "bitch",
    "asshole", "cunt", "dick", "dickhead", "bastard", "whore", "slut", "twat", "wanker", "piss",
    "damn", "hell", "crap", "retard", "faggot",
)  # fmt: skip
# Respellings of a word the rules know ('fck u', 'phuck off'), read as it.
_RESPELLED: Final = {
    **dict.fromkeys(("fck", "fuxk", "fcuk", "phuck", "phuk", "fucc", "fvck", "fuq"), "fuck"),
    **dict.fromkeys(("fcking", "fking", "fuxking", "phucking", "fuckn", "fkn"), "fucking"),
}
# Words a spelled-out run is read as ('f u c k y o u' -> 'fuck you'), when the run is all of them
# or some of them with 'you' and a name after ('f u c k y o u b r a d' -> 'fuck you brad').
_SPELLED: Final = frozenset(
    (
        *_MASKABLE,
        "you",
        "u",
        "your",
        "ur",
        "yourself",
        "urself",
        "off",
        "up",
        "go",
        "screw",
        "shut",
        "loser",
        "idiot",
        "kill",
        "die",
        "neck",
        "hope",
        "i",
        "will",
    )
)
_SPELLED_LONGEST: Final = max(map(len, _SPELLED))
_ADDRESSEE: Final = frozenset({"you", "u", "your", "ur", "yourself"})
_ONE_LETTER_WORDS: Final = frozenset("aiur")  # 'a', 'I', 'u' (you), 'r' (are)
_SPLIT_ARTICLE: Final = 5  # from this length on, such a run reads as that word + a spaced word
_MASKED: Final = re.compile(r"[a-z]*\*+[a-z*]*")


@lru_cache(maxsize=4096)  # the rules fold the same texts (links, quotes, canonical words)
def fold(text: str) -> str:
    """NFKC (full-width, math and circled letters), casefold, look-alikes, accents and invisible
    characters removed. Keeps spacing and punctuation."""
    if text.isascii():
        return text.casefold()  # nothing to normalise, replace or remove in ASCII
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CONFUSABLES)
    decomposed = unicodedata.normalize("NFKD", text)
    kept = (c for c in decomposed if unicodedata.category(c) not in {"Mn", "Cf"})
    return unicodedata.normalize("NFC", "".join(kept))


def unmask(token: str) -> str | None:
    """The starred-out word `token` spells ('f***ing' -> 'fucking', 'd*cks' -> 'dicks'), or None."""
    if not _MASKED.fullmatch(token) or sum(c.isalpha() for c in token) < 1:
        return None
    pattern = re.compile(token.replace("*", "[a-z]"))
    plurals = (word + "s" for word in _MASKABLE if not word.endswith("s"))
    return next((word for word in (*_MASKABLE, *plurals) if pattern.fullmatch(word)), None)


def _token_parts(raw: str) -> list[str]:
    token = raw.strip(_EDGE_PUNCTUATION)
    if not token:
        return []
    if any(c.isalpha() for c in token):
        token = token.translate(_LEET)  # 'sh1t', 'a$$'; a bare number stays a number
    word = unmask(token)
    if word is not None:
        return [word]
    parts = _PARTS.findall(token)
    if len(parts) >= 3 and all(len(p) == 1 for p in parts):
        return ["".join(parts)]  # f.u.c.k, f-u-c-k
    return [_RESPELLED.get(part, part) for part in parts]


# Letters canonical text cannot tell apart ('shlt', 'fvck', 'ug1y' read as 'ugiy').
EQUIVALENT: Final = {"i": "[il]", "l": "[il]", "u": "[uv]", "v": "[uv]"}


def letters(word: str, gap: str = "") -> str:
    """A regex for one canonical word: look-alike and stretched letters ('fuuuck', 'stfuuu')
    included, `gap` between letters."""
    return gap.join(EQUIVALENT.get(c, re.escape(c)) + "+" for c in word)


def lexicon(phrases: Iterable[str]) -> re.Pattern[str]:
    """Whole canonical words or phrases from `phrases`, longest first, over canonical text."""
    body = "|".join(
        " ".join(letters(w) for w in phrase.split()) for phrase in sorted(phrases, key=len, reverse=True)
    )
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])")


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
    return Canonical(spaced_runs_joined(words))


def spaced_runs_joined(words: list[str]) -> str:
    """Runs of three or more one-letter words joined ('f u c k off' -> 'fuck off',
    'S c u n t h o r p e' -> 'scunthorpe')."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if set(run) <= _ONE_LETTER_WORDS:
            out += run  # 'u r a' (you are a): chat words, not a spelled-out word
            run = []
        elif len(run) >= _SPLIT_ARTICLE and run[0] in _ONE_LETTER_WORDS:
            out.append(run.pop(0))  # 'a d i c k h e a d' -> 'a dickhead'
        out += _spelled_words("".join(run)) if len(run) >= 3 else run
        run = []
        if word:
            out.append(word)
    return " ".join(out)


def _spelled_words(joined: str) -> list[str]:
    """A spelled-out run read as words: all of them known ('fuckoff' -> 'fuck off'), or known words
    up to 'you' and one more word after it (a name); otherwise the run is one word ('scunthorpe')."""
    words: list[str] = []
    at = 0
    while at < len(joined):
        word = next(
            (
                joined[at:end]
                for end in range(min(len(joined), at + _SPELLED_LONGEST), at, -1)
                if joined[at:end] in _SPELLED
            ),
            None,
        )
        if word is None:
            break
        words.append(word)
        at += len(word)
    rest = joined[at:]
    if len(words) >= 2 and (not rest or (words[-1] in _ADDRESSEE and len(rest) >= 3)):
        return [*words, rest] if rest else words
    return [joined]
