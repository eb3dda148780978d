"""Abuse aimed at a person, in the writer's own words (not in a quote), by class:

- a threat, open ('kill you') or veiled ('shame if something happened to your car', 'I know
  which school your kids go to', 'better lock your doors');
- incitement to self-harm ('the world would be better without you', 'off yourself');
- a curse with its addressee built in ('fuck off', 'go f yourself', 'eat a bag of dicks');
- a dehumanising comparison ('you look like a potato that learned to talk');
- an insult near a place where the writer addresses someone ('you', 'ur', '@name', 'Ana, ...'),
  or called out as a vocative at the end of a clause ('go touch grass, loser');
- a clause addressed to someone that the offensive-language model scores high, praising nobody.

Profanity with nobody as its object ('that was fucking awesome'), praise ('you're a fucking
legend') and teasing with a laugh ('you muppet 😂') are not insults."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from .normalize import lexicon
from .rules import AIMED, MILD, SEVERE, Subject, TextClassifier, Verdict
from .speech import Speech, addressed_at, speech

WINDOW_WORDS: Final = 6  # how far from 'you' an insult still reads as aimed at them
MODEL_SCORE: Final = 0.9  # the model's score that, in a clause addressed to someone, reads as abuse
COMPARED_WORDS: Final = 4  # 'you look like a movie star': the words a comparison compares to
# Praise that the model scores as offensive when sworn ('you're a fucking legend'), and what
# 'you look like a ...' compares someone to as a compliment.
PRAISE: Final = (
    "legend", "amazing", "brilliant", "awesome", "good", "great", "best", "genius", "beast", "rock",
    "love", "congrats", "thanks", "thank", "proud", "killed it", "nailed", "incredible", "beautiful",
    "hero", "king", "queen", "goat", "champ", "well done", "respect", "cool", "funny", "hilarious",
    "model", "star", "angel", "princess", "snack", "pro", "million", "natural", "boss",
)  # fmt: skip

# Mild enough that with a laugh or love they tease ('you muppet 😂', 'lol you dork').
TEASING: Final = ("muppet", "dork", "goof", "doofus", "dummy", "weirdo", "nutter", "numpty", "plonker")
# People called by these, aimed at someone, are insulted; the last words of a clause with no
# article before them ('..., loser') are a vocative.
INSULT_NOUNS: Final = (
    "idiot", "moron", "loser", "clown", "creep", "freak", "pig", "scum", "tosser", "wanker", "twat",
    "bitch", "asshole", "dickhead", "jerk", "imbecile", "cretin", "retard", "whore", "slut", "cunt",
    "motherfucker", "prick", "douche", "douchebag", "neanderthal", "caveman", "coward", "degenerate",
    "lowlife", "scumbag", "dirtbag", "halfwit", "dimwit", "nitwit", "knobhead", "bellend", "prat",
    "simp", "incel", "parasite", "vermin", "maggot", "cockroach", "subhuman", "disgrace", "mf", "pos",
    "crybaby", "troll", "laughing stock",
)  # fmt: skip
INSULTS: Final = (
    *INSULT_NOUNS, *(n + "s" for n in INSULT_NOUNS), *TEASING,
    "stupid", "dumb", "dumbass", "dumbest", "pathetic", "worthless", "useless", "ugly", "fat", "slob",
    "disgusting", "trash", "garbage", "cow", "rat", "worm", "hack", "braindead", "brain dead",
    "spineless", "clueless", "brainless", "talentless", "filthy", "embarrassment", "suck", "sucks",
    "b word", "piece of shit", "sack of shit", "waste of oxygen", "waste of space", "waste of skin",
    "waste of air", "excuse for a human", "excuse of a human", "shut up", "shut your mouth",
    "shut ur mouth", "shut your trap", "shut ur trap", "shut your face", "shut ur face", "nobody likes",
    "no one likes", "nobody wants", "no one wants", "nobody asked", "no one asked", "nobody cares",
    "no one cares", "delete your account", "get lost", "go away", "get off my page", "make me sick",
    "joke", "get a life", "everyone laughs at", "everybody laughs at", "sad little", "pathetic little", "foh",
)  # fmt: skip
# A laugh, a heart or 'jk' makes a vocative insult or a veiled threat banter ('ok loser, see you
# at 8 😂'); 'lol' and 'lmao' (also said mockingly) only excuse teasing words.
_BANTER: Final = re.compile(r"[😂🤣😆😜😝😘😁😄❤♥💕💜💙]|\b(?:ha(?:ha)+|jk|love (?:you|ya|it))\b")
_LAUGH: Final = re.compile(r"\b(?:lol|lmao|lmfao|rofl)\b")
# Words before a clause's last word that make it a description, not a vocative ('such a loser').
_DESCRIBING: Final = frozenset(
    "a an the such this that these those my his her their our its what some any total complete real"
    " another one is was are were be being been like of for as feel im i no".split()
)
# Aimed by themselves: imperatives and curses with the addressee built in.
DIRECTED: Final = (
    "fuck you", "fuck u", "fuck off", "fuck yourself", "screw you", "foff", "piss off", "sod off",
    "bugger off", "f off", "eff off", "fk off", "fck off", "f you", "f u", "go f yourself",
    "eat shit", "shut tf up", "shut the fuck up", "go to hell", "drop dead", "get fucked",
    "eat a bag of dicks", "eat a dick", "suck my dick", "suck a dick", "kiss my ass",
)  # fmt: skip
_YOU: Final = r"(?:you|u|ya|ye)"
_YOUR: Final = r"(?:your|ur|yer)"
# Each class: what the review item calls it, its score, what softens it ("": nothing; "banter":
# a laugh or a heart makes it a flag; "praise": praise in the words it compares to excuses it),
# and its patterns over the canonical own words.
CLASSES: Final[tuple[tuple[str, float, str, tuple[str, ...]], ...]] = (
    ("threat aimed at someone", SEVERE, "", (
        rf"(?:kill|hurt|shoot|stab|murder|strangle|rape|choke) {_YOU}\b", rf"beat {_YOU} up",
        r"(?:you|u) (?:re|are|r) dead", r"youre dead", rf"{_YOUR} days are numbered",
        rf"{_YOU} (?:will|ll|re gonna|are gonna|re going to|are going to) (?:die|regret|pay|be sorry)",
        rf"(?:hope|wish) (?:{_YOU}|{_YOUR}) (?:\w+ ){{0,2}}(?:burns?|dies?|die|rots?|suffers?|chokes?"
        r"|crash(?:es)?|gets? (?:hit|hurt|killed|cancer|run over|shot|stabbed))\b",
        rf"shut {_YOU} up (?:permanently|for good|forever)",
    )),
    ("veiled threat", SEVERE, "banter", (
        rf"(?:i|we) know where {_YOU} (?:\w+ )?(?:live|work|sleep|park|study|stay|drive)",
        rf"(?:i|we) know where {_YOUR} (?:kids|family|children|mom|mum|wife|husband|parents)",
        r"(?:i|we) know (?:which|what) (?:school|house|street|car|gym|office|route|door|building|room)",
        rf"get what s coming (?:to {_YOU})?", r"deserve (?:everything bad|to suffer|to die|to be hurt)",
        rf"watch {_YOUR} back",
        rf"(?:better|should|go) (?:lock|check|watch) {_YOUR} (?:doors|windows|back|locks)",
        r"sleep with one eye open",
        r"shame if (?:something|anything) (?:happened|happens|were to happen|was to happen)",
        rf"(?:something|anything) (?:bad )?(?:might|could|would|will|is going to|gonna) happen to {_YOUR}?",
        rf"see what happens to {_YOU}\b",
        r"(?:keep \w+|say that again|try me|do (?:it|that) again|one more word) (?:and|n) see what happens",
        rf"(?:i m|im|i am|we re|we are) coming for {_YOU}\b", rf"when (?:i|we) (?:find|catch) {_YOU}\b",
        rf"(?:i ll|ill|i will|i m gonna|i m going to|we ll|we will|gonna) (?:find|hunt down|get) {_YOU}\b",
        rf"{_YOU} (?:ve|have) been warned", rf"{_YOU} won t see (?:it|me|us) coming",
        rf"{_YOU} (?:d )?better watch (?:out|yourself|urself)",
    )),
    ("incitement to self-harm", SEVERE, "", (
        r"(?:off|end|hang|rope|unalive|neck) (?:yourself|urself|your self|ur self)",
        r"jump off (?:a|the) (?:cliff|bridge|building|roof)",
        r"(?:eat|drink|choke on|go) (?:\w+ ){1,3}and die\b",
        rf"{_YOU} should (?:just |really |honestly |go )?(?:die|end it|disappear|not exist|stop breathing"
        r"|rope|kys|jump)\b",
        r"do (?:everyone|us|the world|humanity|us all) a favou?r and (?:just )?(?:die|end it|disappear"
        r"|kys|kill|off|jump|rope|stop breathing|unalive|delete)",
        r"(?:world|everyone|we|earth|everybody) (?:would be|d be|is|are|will be) better (?:off )?"
        rf"without {_YOU}\b",
        rf"(?:nobody|no one|noone) (?:would|will|is going to|gonna) (?:miss|care if|cry for) {_YOU}\b",
        rf"why (?:are|r) {_YOU} (?:still )?alive",
        rf"{_YOU} (?:don t|do not|dont) deserve to (?:live|exist|breathe)",
    )),
    ("dehumanising comparison", AIMED, "praise", (
        rf"(?:{_YOU}|{_YOUR}|youre|you re) (?:\w+ )?(?:look|looks|smell|smells|sound|sounds|act|acts|talk"
        r"|talks|walk|walks) like (?:a|an|some|something)\b",
        rf"{_YOU} (?:have|got|ve got) (?:the )?(?:iq|brain|brains|face|personality|charm) of (?:a|an)\b",
    )),
)  # fmt: skip


class TargetedRule:
    name = "targeted"

    def __init__(self, model: TextClassifier | None = None) -> None:
        self._model = model
        self._praise = lexicon(PRAISE)
        self._insults = lexicon(INSULTS)
        self._teasing = lexicon(TEASING)
        self._vocative = re.compile(rf"(?:^| )(?:{lexicon(INSULT_NOUNS).pattern})$")
        self._directed = lexicon(DIRECTED)
        self._classes = [
            (label, score, softened, re.compile(r"(?<![a-z0-9])(?:" + "|".join(patterns) + ")"))
            for label, score, softened, patterns in CLASSES
        ]

    def check(self, subjects: Sequence[Subject]) -> list[Verdict | None]:
        said = [speech(s.text) for s in subjects]
        out = [self._lexicon(one) for one in said]
        if self._model is None:
            return out
        # the rest: is a clause addressed to someone, in a text praising nobody, offensive?
        ask = [
            (i, clause.text)
            for i, (one, found) in enumerate(zip(said, out, strict=True))
            if found is None and not self._praise.search(one.own.text)
            for clause in one.clauses
            if addressed_at(clause)
        ]
        for (i, clause), score in zip(ask, self._model.scores([c for _, c in ask]), strict=True):
            if score >= MODEL_SCORE and out[i] is None:
                reason = f"addressed to someone, offensive language ({score:.2f}) in '{clause}', no praise"
                out[i] = Verdict(self.name, reason, AIMED)
        return out

    def _lexicon(self, said: Speech) -> Verdict | None:
        own = said.own
        banter = bool(_BANTER.search(said.outside))
        for label, score, softened, pattern in self._classes:
            found = pattern.search(own.text)
            if not found:
                continue
            compared_to = " ".join(own.text[found.end() :].split()[:COMPARED_WORDS])
            if softened == "praise" and self._praise.search(compared_to):
                continue
            if softened == "banter" and banter:
                return Verdict(self.name, f"{label}, said laughing: '{found.group()}'", MILD)
            return Verdict(self.name, f"{label}: '{found.group()}'", score)
        directed = self._directed.search(own.text)
        if directed:
            return Verdict(self.name, f"abuse aimed at someone: '{directed.group()}'", AIMED)
        teasing = banter or bool(_LAUGH.search(said.outside))
        addressed = addressed_at(own)
        for match in self._insults.finditer(own.text):
            if teasing and self._teasing.fullmatch(match.group()):
                continue
            at = own.text.count(" ", 0, match.start())
            near = [a for a in addressed if abs(a - at) <= WINDOW_WORDS]
            if near:
                who = own.words[near[0]].replace("atmention", "@name")
                return Verdict(self.name, f"insult aimed at someone: '{who}' … '{match.group()}'", AIMED)
        for clause in said.clauses:
            called = self._vocative.search(clause.text)
            before = clause.text[: called.start()].split()[-3:] if called else []
            if called and not banter and not _DESCRIBING.intersection(before):
                return Verdict(self.name, f"insult called out at someone: '{called.group().strip()}'", AIMED)
        return None
