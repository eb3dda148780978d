"""Abuse aimed at a person: an insult or a threat in the writer's own words (not in a quote)
near a place where they address someone ('you', 'ur', '@name'), or an imperative that is
aimed by itself ('fuck off', 'go f yourself'), or a text addressed to someone that the
offensive-language model scores high and that praises nobody. Profanity with nobody as its
object ('that was fucking awesome') and praise ('you're a fucking legend') are not insults."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from .normalize import Canonical
from .rules import AIMED, SEVERE, Subject, TextClassifier, Verdict
from .speech import addressed_at, speech

WINDOW_WORDS: Final = 6  # how far from 'you' an insult still reads as aimed at them
MODEL_SCORE: Final = 0.9  # the model's score that, addressed to someone, reads as abuse
# Praise that the model scores as offensive when sworn ('you're a fucking legend').
PRAISE: Final = (
    "legend", "amazing", "brilliant", "awesome", "good", "great", "best", "genius", "beast", "rock",
    "love", "congrats", "thanks", "thank", "proud", "killed it", "nailed", "incredible", "beautiful",
    "hero", "king", "queen", "goat", "champ", "well done", "respect", "cool", "funny", "hilarious",
)  # fmt: skip

# Canonical words and phrases: an insult when aimed at someone.
INSULTS: Final = (
    "idiot", "idiots", "moron", "morons", "loser", "losers", "stupid", "dumb", "dumbass", "dumbest",
    "pathetic", "worthless", "useless", "ugly", "fat", "slob", "disgusting", "trash", "garbage",
    "clown", "creep", "freak", "pig", "cow", "rat", "worm", "scum", "hack", "muppet", "tosser",
    "wanker", "twat", "bitch", "asshole", "dickhead", "jerk", "imbecile", "cretin", "retard",
    "retarded", "whore", "slut", "cunt", "brainless", "talentless", "filthy", "mf", "pos",
    "motherfucker", "prick", "douche", "douchebag", "suck", "sucks", "b word", "piece of shit",
    "waste of oxygen", "waste of space", "shut up", "shut your mouth", "nobody likes", "nobody wants",
    "nobody asked", "delete your account", "get lost", "go away", "get off my page", "make me sick",
)  # fmt: skip
# Aimed by themselves: imperatives and curses with the addressee built in.
DIRECTED: Final = (
    "fuck you", "fuck u", "fuck off", "fuck yourself", "screw you", "foff", "piss off", "sod off",
    "bugger off", "f off", "eff off", "fk off", "fck off", "f you", "f u", "go f yourself",
    "eat shit", "shut tf up", "shut the fuck up",
)  # fmt: skip
# Threats of violence against the person addressed.
THREATS: Final = (
    r"(?:kill|hurt|shoot|stab|murder|strangle|rape|choke) (?:you|u|ya)\b",
    r"beat (?:you|u|ya) up", r"i know where (?:you|u) live", r"watch (?:your|ur) back",
    r"(?:you|u) (?:re|are|r) dead", r"youre dead", r"sleep with one eye open",
    r"hope (?:you|u) (?:get hit|die|get hurt)", r"(?:your|ur) days are numbered",
    r"(?:you|u) will (?:die|regret|pay)",
)  # fmt: skip


def _phrases(words: Sequence[str]) -> re.Pattern[str]:
    body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])")


class TargetedRule:
    name = "targeted"

    def __init__(self, model: TextClassifier | None = None) -> None:
        self._model = model
        self._praise = _phrases(PRAISE)
        self._insults = _phrases(INSULTS)
        self._directed = _phrases(DIRECTED)
        self._threats = re.compile(r"(?<![a-z0-9])(?:" + "|".join(THREATS) + ")")

    def check(self, subjects: Sequence[Subject]) -> list[Verdict | None]:
        owns = [speech(s.text).own for s in subjects]
        out = [self._lexicon(own) for own in owns]
        if self._model is None:
            return out
        # the rest of those addressed to someone, praising nobody: does the model call it offensive?
        ask = [
            i
            for i, (own, found) in enumerate(zip(owns, out, strict=True))
            if found is None and addressed_at(own) and not self._praise.search(own.text)
        ]
        for i, score in zip(ask, self._model.scores([owns[i].text for i in ask]), strict=True):
            if score >= MODEL_SCORE:
                reason = f"addressed to someone, offensive language ({score:.2f}), no praise"
                out[i] = Verdict(self.name, reason, AIMED)
        return out

    def _lexicon(self, own: Canonical) -> Verdict | None:
        threat = self._threats.search(own.text)
        if threat:
            return Verdict(self.name, f"threat aimed at someone: '{threat.group()}'", SEVERE)
        directed = self._directed.search(own.text)
        if directed:
            return Verdict(self.name, f"abuse aimed at someone: '{directed.group()}'", AIMED)
        addressed = addressed_at(own)
        for match in self._insults.finditer(own.text):
            at = own.text.count(" ", 0, match.start())
            near = [a for a in addressed if abs(a - at) <= WINDOW_WORDS]
            if near:
                who = own.words[near[0]].replace("atmention", "@name")
                return Verdict(self.name, f"insult aimed at someone: '{who}' … '{match.group()}'", AIMED)
        return None
