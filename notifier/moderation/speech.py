"""Who a text speaks to, and what it only reports: quoted spans set apart from the writer's own
words, and the places where the writer addresses someone ('you', 'ur', '@name', a name called
out at the start: 'Ana, ...')."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from .normalize import Canonical, canonical, fold

# "…", “…”, «…», ‘…’, and '…' that opens at a word start and closes at a word end (so the
# apostrophes in "don't" and "you're" open nothing, and one inside a quote ends none:
# 'you're a stupid head')
_QUOTED: Final = re.compile(
    r"\"[^\"]*\"|“[^”]*”|«[^»]*»|‘[^’]*’|(?<![\w'])'(?:[^'\n]|(?<=\w)'(?=\w))+'(?![\w'])"
)
# A quote that completes the writer's own words to someone is theirs, in scare quotes: after
# 'you're a', 'you are so', 'hope you', 'go', or the writer's own 'I said' ('you're a "genius"',
# 'you should go "die"', 'I said "kys" and I meant it'), not someone else's speech.
_SCARE: Final = re.compile(
    r"(?:\b(?:you|u|ya|ur|you['’]?re|you are|u r|you r)"
    r"(?: (?:such|so|a|an|the|just|really|literally|total|complete|absolute|real|fucking|little|big))*"
    r"|(?:^|[.!?,]\s*|\b(?:you|u|ya)(?: \w+)? |\bjust |\bplease |\bpls |\bnow )go"
    r"|\bi (?:said|say|mean|meant))\s*$"
)
_MENTION: Final = re.compile(r"(?<![\w@])@[a-z0-9_][a-z0-9_.]*")
# Words that open a phrase about a thing ('this game', 'the traffic'): @names right before one
# point the text at those people without addressing what follows to them ('@ana this song is the
# shit'), and an insult after one is said of that thing ('@dad look at this stupid printer').
THING: Final = frozenset("this that these those the my our his her their its".split())
MIN_OWN_WORDS: Final = 3  # a text that is all quote speaks for its writer
SECOND_PERSON: Final = frozenset(
    {"you", "u", "ya", "ur", "your", "youre", "yours", "yourself", "urself", "yourselves", "thou"}
)
# The second person in patterns over canonical text ('u', 'ur' and 'yer' included).
YOU: Final = r"(?:you|u|ya|ye)"
YOUR: Final = r"(?:your|ur|yer)"
# 'you know', 'thank you', 'see you': 'you' that addresses nobody in particular
_NOT_ADDRESS: Final = re.compile(r"\b(?:you know|you see|ya know|mind you|thank you|see you|love you)\b")
# 'imagine being this dumb': said to the reader
_IMPLIED_YOU: Final = re.compile(r"\bimagine being (?:this|so|that)\b")
# A capitalised name called out before a comma opens a text addressed to that person ('Ana, ...',
# 'hey Marco, ...'); interjections in that place call nobody.
_VOCATIVE: Final = re.compile(r"^\s*(?:(?:hey|hi|yo|oi|oy|listen|look)\s+)?([A-Z][a-z]+)\s*,")
_NOT_NAMES: Final = frozenset(
    "shit damn ugh well ok okay wow oh yes yeah no nope honestly seriously lol lmao man fuck welp sorry"
    " thanks hey hi hello so look listen now then also guys folks everyone ffs omg wtf bro dang crap hmm"
    " alright sure great fine again today anyway first".split()
)
# Speech reported without quotes: what follows a third party's 'said' or 'told me' up to the end of
# the sentence ('the boss said watch your back'), also in an anecdote ('my son told his sister
# you're smelly'); 'I said' and 'you said' report nobody else, and 'everyone says' is the writer's own
# verdict.
_REPORTED: Final = re.compile(
    r"\b(?!(?:i|we|you|u|everyone|everybody|people|nobody|all)\b)[a-z]+ (?:said|says"
    r"|told (?:me|us|him|her|them|(?:his|her|their|my|our) [a-z]+)(?: to)?|wrote|texted|yelled"
    r"|shouted|replied|commented|whispered|warned (?:me|us))\b[^.!?\n]*"
)
# A clause ends at punctuation followed by a space (not inside 'f.u.c.k' or a link) or a dash.
_CLAUSE_END: Final = re.compile(r"[,.;:!?…]+(?=\s|$)|\n|\s[-–—]+\s")


@dataclass(frozen=True, slots=True)
class Speech:
    outside: str  # the folded text outside quotes (links are read from it)
    own: Canonical  # the writer's own words: outside quotes, each @name (or called-out name) as `atmention`
    asserted: Canonical  # `own` without speech reported unquoted ('she said she knows where you live')
    quoted: Canonical  # what the text quotes ("" when the quote is the whole text)
    mentions: int  # @names outside quotes
    clauses: tuple[Canonical, ...]  # `own`, cut at punctuation

    @property
    def is_reporting(self) -> bool:
        return bool(self.quoted.text)


@lru_cache(maxsize=4096)
def speech(text: str) -> Speech:
    folded = fold(text)
    quotes: list[str] = []

    def set_apart(quote: re.Match[str]) -> str:
        if _SCARE.search(folded, 0, quote.start()):
            return " " + quote.group()[1:-1] + " "  # the writer's own words
        quotes.append(quote.group())
        return " "

    outside = _QUOTED.sub(set_apart, folded)
    if quotes and len(canonical(outside).words) < MIN_OWN_WORDS:
        outside, quotes = folded, []
    mentions = len(_MENTION.findall(outside))
    marked = _MENTION.sub(" atmention ", outside)  # one word, no leetspeak turned into a name
    called = _VOCATIVE.match(text)
    if called and called.group(1).casefold() not in _NOT_NAMES:
        marked = re.sub(rf"\b{called.group(1).casefold()}\b", " atmention ", marked, count=1)
    unreported = _REPORTED.sub(" ", marked)
    clauses = tuple(c for c in (canonical(part) for part in _CLAUSE_END.split(unreported)) if c.text)
    own = canonical(marked)
    quoted = canonical(" ".join(quotes))
    asserted = canonical(unreported)
    return Speech(
        outside=outside, own=own, asserted=asserted, quoted=quoted, mentions=mentions, clauses=clauses
    )


def addressed_at(own: Canonical) -> list[int]:
    """Word positions in `own` where the writer addresses someone (not @names that open a phrase
    about a thing: THING)."""
    text = _NOT_ADDRESS.sub(lambda m: " ".join("x" for _ in m.group().split()), own.text)
    text = _IMPLIED_YOU.sub(lambda m: "you" + " x" * m.group().count(" "), text)
    words = text.split()
    out = []
    for i, word in enumerate(words):
        if word == "atmention":
            after = next((w for w in words[i + 1 :] if w != "atmention"), "")
            if after not in THING:
                out.append(i)
        elif word in SECOND_PERSON:
            out.append(i)
    return out


def about_a_thing(words: list[str], address: int, at: int) -> bool:
    """Whether the insult at word `at` is said of a thing named between it and the @name at
    `address` ('@dad look at this stupid printer'), not of that person."""
    return words[address] == "atmention" and address < at and any(w in THING for w in words[address + 1 : at])
