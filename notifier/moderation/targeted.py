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

from .menace import family_insult, intimidation, pushed_euphemism
from .normalize import lexicon
from .rules import AIMED, MILD, SEVERE, Subject, TextClassifier, Verdict
from .speech import YOU as _YOU
from .speech import YOUR as _YOUR
from .speech import Speech, about_a_thing, addressed_at, speech

WINDOW_WORDS: Final = 6  # how far from 'you' an insult still reads as aimed at them
MODEL_SCORE: Final = 0.9  # the model's score that, in a clause addressed to someone, reads as abuse
COMPARED_WORDS: Final = 4
# Words that spoil praise in a comparison ('you sound like a dying goat').
SPOILED: Final = (
    "dying", "dead", "rotting", "rotten", "sick", "drowning", "wounded", "screaming", "rabid",
    "strangled", "deflated", "melting", "constipated", "drunk", "sad", "ugly", "fat", "stupid", "dumb",
    "sweaty", "smelly", "wet", "bald", "failed", "washed", "injured", "crying",
)  # fmt: skip
# Competition that makes 'we're coming for you' a sporting boast.
CONTEST: Final = (
    "season", "title", "match", "game", "league", "cup", "final", "finals", "tournament", "rematch", "race",
    "trophy", "crown", "belt", "championship", "round", "playoffs", "derby", "ranking", "leaderboard",
    "record", "spot", "points", "score", "next year", "next time", "fixture", "tourney", "ladder",
)  # fmt: skip  # 'you look like a movie star': the words a comparison compares to
# Praise that the model scores as offensive when sworn ('you're a fucking legend'), and what
# 'you look like a ...' compares someone to as a compliment.
PRAISE: Final = (
    "legend", "amazing", "brilliant", "awesome", "good", "great", "best", "genius", "beast", "rock",
    "love", "congrats", "thanks", "thank", "proud", "killed it", "nailed", "incredible", "beautiful",
    "hero", "king", "queen", "goat", "champ", "well done", "respect", "cool", "funny", "hilarious",
    "model", "star", "angel", "princess", "snack", "pro", "million", "natural", "boss",
)  # fmt: skip
# Not praise, but no insult to be compared to either ('you look like an old friend of mine').
LIKENESSES: Final = (
    "friend", "broken record", "kid on christmas", "kid at christmas", "kid in a candy", "new person",
    "different person", "someone i know", "cousin", "brother", "sister", "twin", "younger", "local",
    "tourist", "teacher", "grown up", "adult",
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
    "crybaby", "troll", "laughing stock", "npc", "bozo", "walking l", "pedo", "paedo", "pedophile",
    "paedophile", "nonce", "kiddie fiddler",
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
    "washed", "washed up", "irrelevant", "cringe", "cringey",
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
# 'mid' as a prefix, not a verdict: 'you're mid-way through', 'mid season'
_MID_NOUNS: Final = (
    r"(?:way|season|range|size|level|week|day|air|night|point|term|life|table|century|sentence|stream|flight"
    r"|match|year|month|tier|afternoon|morning|evening|career|conversation|game|laugh|\d+s)\b"
)
# A threat of bodily harm: the writer ('I'll', 'we're gonna', a clause opening with 'gonna') doing
# harm to the addressee's body ('I'll break your jaw', 'gonna put you in the hospital').
_INTENT: Final = (
    r"(?:i ll|ill|i will|i shall|i d|i would|i m|im|i am|imma|we ll|we will|we re|we are|we d"
    r"|(?:^|(?<=and )|(?<=then ))(?:gonna|going to))"
    r"(?: (?:gonna|going to|just|fucking|personally|literally|happily))*"
)
_HARM: Final = (
    r"(?:break|breaking|smash|smashing|snap|snapping|rip|ripping|knock|knocking|punch|punching|kick|kicking"
    r"|stomp|stomping|cave|caving|slit|slitting|gouge|gouging|bash|bashing|crack|cracking|cut|cutting"
    r"|bust|busting|shatter|shattering|tear|tearing|split|splitting|pull|pulling|stab|stabbing|burn|burning"
    r"|fracture|fracturing|rearrange|rearranging|dislocate|dislocating|cave in|kick in)"
)
_BODY: Final = (
    r"(?:jaw|teeth|tooth|face|head|neck|legs?|arms?|nose|skull|throat|ribs|knees?|kneecaps?|fingers|hands?"
    r"|spine|eyes?|lights|lip|lips|mouth|bones|skin|guts|windpipe)\b"
)
# Joking between friends: a laugh with a word of friendship ('... haha love you bestie').
_FRIENDS: Final = lexicon(("love you", "love ya", "ily", "bestie", "bff", "my friend", "buddy", "pal", "hun"))
# Each class: what the review item calls it, its score, what softens it (any of: "banter": a laugh
# or a heart makes it a flag; "praise": praise in the words it compares to excuses it, unless they
# are spoiled: 'a dying goat'; "reported": it counts only in the writer's own assertion, not in
# speech reported unquoted; "friends": a laugh with a word of friendship makes it a flag;
# "contest": talk of a season or a match excuses it), and its patterns
# over the canonical own words.
CLASSES: Final[tuple[tuple[str, float, str, tuple[str, ...]], ...]] = (
    ("threat of bodily harm", SEVERE, "friends reported", (
        rf"{_INTENT} (?:\w+ ){{0,4}}{_HARM} (?:{_YOU} )?(?:in )?{_YOUR} (?:\w+ )?{_BODY}",
        rf"{_INTENT} (?:\w+ )?{_HARM} every bone in {_YOUR} body",
        rf"{_INTENT} (?:\w+ )?(?:put|send|leave) {_YOU} (?:in|into|to) (?:the |a |an |your )?"
        r"(?:hospital|wheelchair|coma|er|icu|grave|early grave|body bag|morgue|ground|ambulance)\b",
        rf"{_INTENT} (?:\w+ ){{0,4}}beat {_YOU} (?:until|till|til|to death|half to death|senseless|bloody"
        r"|black and blue|within an inch|so hard)",
        rf"{_YOU} ll be (?:picking|spitting|eating|drinking|breathing|pissing) (?:\w+ ){{0,3}}"
        r"(?:teeth|through a straw|blood)\b",
        rf"(?:{_YOU} (?:re|are|ll be|will be)|youre) (?:leaving|going home|going out|coming out|waking up"
        r"|ending up) (?:in|on) (?:an ambulance|a body bag|a wheelchair|a stretcher|a coma|a cast|the icu"
        r"|the er|hospital)\b",
    )),
    ("threat aimed at someone", SEVERE, "reported", (
        rf"(?:kill|hurt|shoot|stab|murder|strangle|rape|choke) {_YOU}\b", rf"beat {_YOU} up",
        r"(?:you|u) (?:re|are|r) dead", r"youre dead", rf"{_YOUR} days are numbered",
        rf"{_YOU} (?:will|ll|re gonna|are gonna|re going to|are going to) (?:die|regret|pay|be sorry)",
        rf"(?:hope|wish) (?:{_YOU}|{_YOUR}) (?:\w+ ){{0,2}}(?:burns?|dies?|die|rots?|suffers?|chokes?"
        r"|crash(?:es)?|gets? (?:hit|hurt|killed|cancer|run over|shot|stabbed|raped|murdered|beaten))\b",
        rf"(?:hope|wish) (?:someone|somebody|some one|they|he|she) (?:\w+ )?(?:shoots|kills|stabs|rapes"
        rf"|murders|hurts|beats|runs over) {_YOU}\b(?! (?:a|an|some|the|back|over|down)\b)",
        rf"{_YOUR} (?:family|kids|children|mom|mum|mother|dad|father|wife|husband|sister|brother)"
        r" (?:will|ll|is gonna|are gonna|is going to|are going to) (?:suffer|die|regret"
        r"|pay\b(?! (?:a|an|the|your|ur|my|our|their|his|her|attention|rent|bills?|tax|taxes|off|back|cash"
        r"|money|up|out|in|at)\b)(?! for (?!(?:this|that|it|what)\b)))",
        rf"{_INTENT} (?:\w+ ){{0,2}}(?:burn|burning|torch|torching) {_YOUR} (?:house|home|place|car) down",
        rf"shut {_YOU} up (?:permanently|for good|forever)",
    )),
    ("veiled threat", SEVERE, "banter reported", (
        rf"get what s coming (?:to {_YOU})?",
        r"deserve (?:everything bad|to suffer|to die|to be hurt)",
        rf"{_YOU} (?:\w+ )?deserve to (?:be|get) (?:raped|killed|shot|beaten|murdered)\b"
        r"(?! (?:down|at|out)\b)",
        rf"watch {_YOUR} back",
        rf"(?:better|should|go) (?:lock|check|watch) {_YOUR} (?:doors|windows|back|locks)",
        r"sleep with one eye open",
        r"shame if (?:something|anything) (?:happened|happens|were to happen|was to happen)",
        rf"(?:something|anything) (?:bad )?(?:might|could|would|will|is going to|gonna) happen to {_YOUR}?",
        rf"see what happens to {_YOU}\b",
        r"(?:keep \w+|say that again|try me|do (?:it|that) again|one more word) (?:and|n) see what happens",
        rf"when (?:i|we) (?:find|catch) {_YOU}\b",
        rf"(?:i ll|ill|i will|i m gonna|i m going to|we ll|we will|gonna) (?:find|hunt down|get) {_YOU}\b",
        rf"{_YOU} (?:ve|have) been warned", rf"{_YOU} (?:d )?better watch (?:out|yourself|urself)",
    )),
    ("veiled threat", SEVERE, "banter reported contest", (
        rf"(?:i m|im|i am|we re|we are) coming for {_YOU}\b", rf"{_YOU} won t see (?:it|me|us) coming",
    )),
    ("incitement to self-harm", SEVERE, "", (
        r"(?:off|end|hang|rope|unalive|neck) (?:yourself|urself|your self|ur self)",
        r"jump off (?:a|the) (?:cliff|bridge|building|roof)",
        r"(?:slit|cut|open) (?:your|ur|yer) (?:wrists|throat)\b",
        r"(?:eat|suck on|swallow) a (?:bullet|shotgun)",
        rf"(?:put|stick) a bullet (?:in|through) {_YOUR} (?:head|brain|skull|mouth)",
        rf"blow {_YOUR} (?:brains|head) out",
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
    ("dehumanising comparison", AIMED, "praise banter", (
        rf"(?:{_YOU}|{_YOUR}|youre|you re) (?:\w+ )?(?:look|looks|smell|smells|sound|sounds|act|acts|talk"
        r"|talks|walk|walks|sing|sings) like (?:a|an|some|something)\b",
        rf"{_YOU} (?:have|got|ve got) (?:the )?(?:iq|brain|brains|face|personality|charm) of (?:a|an)\b",
    )),
    # 'mid' is an opinion of a thing ('that movie was mid'), an insult said of a person
    ("slang insult aimed at someone", AIMED, "banter", (
        rf"(?:{_YOU} (?:re|are|r|is)|youre|ur) (?:\w+ )?mid\b(?! {_MID_NOUNS})",
        r"mid (?:at|as) (?:everything|life|a person)",
        rf"(?:mid|trash|garbage|cringe|washed|irrelevant) and so (?:are|r|is) {_YOU}\b",
        r"^ratio(?:ed|d)?\b(?! (?:of|is|was|between|for|to|in|at|on)\b)",
        r"\bratio (?:l|plus|and|you|u|cope|bozo|nobody)\b",
        r"(?:l|asked|cope|bozo|seethe|off|mad) ratio\b", r"(?:definition|embodiment|epitome) of mid\b",
        rf"{_YOU} (?:really |totally |completely |just )?fell off"
        r"(?! (?:a|the|your|ur|his|her|my|that|this|of|from|it)\b)",
    )),
)  # fmt: skip


class TargetedRule:
    name = "targeted"

    def __init__(self, model: TextClassifier | None = None) -> None:
        self._model = model
        self._praise = lexicon(PRAISE)
        self._spoiled = lexicon(SPOILED)
        self._likeness = lexicon((*PRAISE, *LIKENESSES))
        self._contest = lexicon(CONTEST)
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
            if any(not about_a_thing(clause.words, a, len(clause.words)) for a in addressed_at(clause))
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
            text = said.asserted.text if "reported" in softened else own.text
            found = pattern.search(text)
            if not found:
                continue
            compared_to = " ".join(text[found.end() :].split()[:COMPARED_WORDS])
            if (
                "praise" in softened
                and self._likeness.search(compared_to)
                and not self._spoiled.search(compared_to)
            ):
                continue
            if "contest" in softened and self._contest.search(text):
                continue
            joking = (
                "friends" in softened
                and (banter or _LAUGH.search(said.outside))
                and _FRIENDS.search(own.text)
            )
            if ("banter" in softened and banter) or joking:
                return Verdict(self.name, f"{label}, said laughing: '{found.group()}'", MILD)
            return Verdict(self.name, f"{label}: '{found.group()}'", score)
        menace = self._menace(said, banter)
        if menace:
            return menace
        own = said.asserted  # insults count in the writer's own assertion, not in an anecdote
        directed = self._directed.search(own.text)
        if directed:
            return Verdict(self.name, f"abuse aimed at someone: '{directed.group()}'", AIMED)
        teasing = banter or bool(_LAUGH.search(said.outside))
        addressed = addressed_at(own)
        for match in self._insults.finditer(own.text):
            if teasing and self._teasing.fullmatch(match.group()):
                continue
            at = own.text.count(" ", 0, match.start())
            near = [
                a for a in addressed if abs(a - at) <= WINDOW_WORDS and not about_a_thing(own.words, a, at)
            ]
            if near:
                who = own.words[near[0]].replace("atmention", "@name")
                return Verdict(self.name, f"insult aimed at someone: '{who}' … '{match.group()}'", AIMED)
        for clause in said.clauses:
            called = self._vocative.search(clause.text)
            before = clause.text[: called.start()].split()[-3:] if called else []
            if called and not banter and not _DESCRIBING.intersection(before):
                return Verdict(self.name, f"insult called out at someone: '{called.group().strip()}'", AIMED)
        return None

    def _menace(self, said: Speech, banter: bool) -> Verdict | None:
        """Intimidation, a suicide euphemism pushed on someone, an insult to their family."""
        own = said.own
        watched = intimidation(said.asserted.text, kind=bool(self._praise.search(own.text)))
        if watched:
            label = "intimidation, said laughing" if banter else "intimidation"
            return Verdict(self.name, f"{label}: '{watched}'", MILD if banter else SEVERE)
        pushed = pushed_euphemism(own.text, addressed=bool(addressed_at(own)))
        if pushed:
            return Verdict(self.name, f"suicide euphemism pushed on someone: '{pushed}'", SEVERE)
        family = family_insult(own.text, kind=bool(self._praise.search(own.text)))
        if family:
            label = "insult to someone's family, said laughing" if banter else "insult to someone's family"
            return Verdict(self.name, f"{label}: '{family}'", MILD if banter else AIMED)
        return None
