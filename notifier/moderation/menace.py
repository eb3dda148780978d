"""Menace that names no harm, read from canonical own words (see `targeted.py`, which asks):

- **intimidation**: the writer shows they watch the person (where they live or go, their routine,
  their car, family or real name: 'I've seen which bus you take', 'I know your address') and warns
  them ('think about that', 'keep posting and you'll see'). Watching alone also intimidates,
  unless the text offers something kind ('I know which car you drive, I'll pick you up at 7');
  a hazard excuses a warning ('be careful on the way home, the roads are icy'). A few warnings
  menace alone ('if you know what's good for you', 'think hard before you post again');
- **a suicide euphemism pushed on someone**: a joke or phonetic word for suicide ('sewer slide',
  'final yeet', 'unalive', 'forever nap') suggested ('go', 'just', 'try', 'time for') or said with
  rejection ('nobody wants you'); 'my grades took a sewer slide' pushes nothing;
- **an insult to the person's family or upbringing**: their mother, parents or whoever raised them,
  with shame, regret or an insult ('your mom must be ashamed of what she raised').
"""

from __future__ import annotations

import re
from typing import Final

from .normalize import lexicon
from .speech import YOU as _YOU
from .speech import YOUR as _YOUR

_KIN: Final = (
    r"(?:kids|children|child|son|daughter|wife|husband|girlfriend|boyfriend|sister|brother|mom|mum"
    r"|mother|dad|father|parents|family|folks)"
)
_PLACES: Final = (
    r"(?:address|home address|real name|full name|last name|employer|workplace|route|plate|plate number"
    r"|license plate|number plate|ip|ip address|schedule|routine|school)"
)


def _compile(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(patterns) + r")(?![a-z0-9])")


# The writer shows they watch the person: intimidating by itself unless the text is kind.
SURVEILLANCE: Final = _compile(
    r"(?:i|1|we|i ve|ive|we ve) (?:know|knew|found|looked up|dug up|wrote down|traced|tracked|saved|have|got)"
    rf" (?:\w+ )?{_YOUR} (?:\w+ )?{_PLACES}",
    r"(?:i|we) (?:know|found out|figured out|worked out|learned|looked up) (?:exactly )?(?:where|which"
    rf"|what time|when) {_YOU} (?:\w+ ){{0,2}}?(?:live|work|sleep|park|study"
    r"|stay|drive|leave|get home|go|take|catch|walk|run|shop|eat|train)",
    rf"(?:i|we) know (?:where|which|what) {_YOUR} {_KIN}",
    rf"(?:i|we) know (?:what time|when|where) {_YOUR} (?:shift|class|train|bus|flight|practice|lesson|work"
    r"|school|day|run|gym)",
    r"(?:i|we) know (?:which|what) (?:school|house|street|car|gym|office|route|door|building|room|bus"
    r"|train|floor|apartment|flat)",
    r"(?:i|we) know the (?:school|house|street|car|gym|office|route|building|bus|train|tram|cafe|bar|park)"
    rf" (?:\w+ )?{_YOU}",
    rf"(?:i ve|i have|ive|we ve|we have|i|we|been) (?:been )?(?:seen|watching|watched|noticed|following"
    rf"|followed|tracking|clocked) (?:which|where|what time|when)(?: \w+){{0,2}} {_YOU}",
    rf"{_YOUR} (?:home )?address (?:isn t|is not|wasn t|ain t|is) (?:hard|difficult|easy) to find",
    rf"{_YOU} live alone",
    r"(?:nice|pretty|cute|lovely|cool|fancy|shiny|big|new) (?:\w+ ){0,2}(?:house|home|car|jacket|bike|dog"
    rf"|kids|door|garden|place|apartment|flat|truck|coat) {_YOU} (?:have|got|ve got|wore|drive|park|own"
    r"|live)",
    rf"{_YOUR} {_KIN} (?:\w+ ){{0,4}}(?:at|outside|near|by|leaving) (?:the |their |her |his )?(?:bus stop"
    r"|school|park|gym|home|house|office|station|work|door)",
)
# The person's way home or whereabouts: intimidating only with a warning.
WHEREABOUTS: Final = _compile(
    rf"(?:on|during) (?:the|{_YOUR}) (?:way|walk|drive|ride|commute) (?:home|back|to work|to school)",
    r"(?:walking|walk|going|drive|ride) (?:back|home)(?: alone)?",
    r"the drive home",
    rf"(?:i |we )?saw {_YOU} (?:at|in|outside|near|leaving|walking|with|on|by)",
    rf"(?:at|outside|to|by) {_YOUR} (?:door|house|home|office|work|school|place|job|building|street|car|flat"
    r"|apartment|window)",
    # a routine: 'you take the 7:40 tram', 'you walk your dog at 6 every morning'
    rf"{_YOU} (?:always |usually )?(?:take|catch|ride|get) the (?:\w+ ){{0,2}}(?:tram|bus|train|subway"
    r"|metro|ferry)",
    rf"{_YOU} (?:always |usually )?(?:walk|park|leave|jog|run|drive|cycle|arrive|get home|pass|go)\w*"
    r" (?:\w+ ){0,5}(?:every|each|on) (?:morning|night|evening|day|weekday|mondays|tuesdays|wednesdays"
    r"|thursdays|fridays|saturdays|sundays|weekend|weekends)",
    rf"{_YOUR} {_KIN}(?: s)? (?:school|work|office|gym|bus|class|classes|practice|route|nursery|daycare)",
)
# Warnings that, with watching, menace.
WARNINGS: Final = _compile(
    r"(?:be |stay )?careful",
    r"watch (?:yourself|urself|out|your step|ur step)",
    r"think (?:about|twice|hard|again)",
    rf"before (?:{_YOU}|{_YOUR} next) (?:post|reply|comment|say|tweet|write)",
    r"keep (?:posting|talking|it up|going|commenting|replying|tweeting|running your mouth)",
    rf"{_YOU} ll see",
    r"stay quiet",
    r"delete (?:this|that|it|your post|your posts|your account)",
    r"or (?:else|i ll|we ll|i will|we will)",
    rf"while {_YOU} (?:still )?can",
    r"would be a (?:pity|shame)",
    r"sleep (?:well|tight)",
    rf"don t {_YOU}",
    r"enjoy (?:your|the|ur) (?:walk|drive|ride|trip|night|evening|sleep)",
    r"just saying",
    r"remember that",
    r"(?:i m|i am|we re|we are|i ll be|we ll be) watching",
    r"lock (?:your|ur) doors?",
    r"not (?:so )?hard to find",
    r"(?:it d |it would |would )?be a (?:pity|shame)",
    r"(?:pity|shame) if",
    r"stay (?:off|away from)",
    r"(?:we ll|we will|you ll|you will) see",
    rf"see how (?:brave|tough|funny|smart|big|hard|loud|confident) {_YOU}",
    r"one more (?:post|word|comment|reply|tweet|video|time)",
    r"(?:doesn t|isn t|don t|aren t) (?:it|she|he|they)",
    r"something to think about",
)
# Warnings that menace by themselves.
MENACES: Final = _compile(
    rf"if {_YOU} know what s good for {_YOU}",
    r"would hate for (?:anything|something|anyone|someone|somebody) to",
    r"(?:see|guess) who (?:turns|shows|comes) up",
    rf"think (?:hard|twice|carefully|long and hard) before {_YOU} (?:\w+ ){{0,2}}again",
)
# Care: a text about suicide that helps ('please call 988', 'you're not alone').
SUPPORT: Final = lexicon((
    "helpline", "hotline", "988", "samaritans", "crisis line", "reach out", "not alone", "mental health",
    "talk to someone", "therapist", "therapy", "get help", "here for you", "prevention", "awareness",
))  # fmt: skip
# What a well-meaning text that mentions someone's whereabouts offers; a hazard that explains a warning.
KIND: Final = lexicon((
    "pick you up", "pick u up", "together", "invite", "invites", "invitation", "invitations", "mail", "card",
    "cards", "gifts", "neighbours", "neighbors", "party", "cake", "gift", "present",
    "birthday", "wedding", "congrats", "congratulations", "drop off", "say hi", "wave", "coffee", "lunch",
    "dinner", "drinks", "carpool", "lift", "thanks", "thank you", "miss you", "welcome", "neighbour",
    "neighbor", "small world", "have fun", "good luck", "safe travels", "enjoy", "want to come",
    "wanna come", "want to join", "join us", "join me", "come along", "come with", "see you there",
    "for friends", "recommend",
))  # fmt: skip
HAZARDS: Final = lexicon((
    "icy", "ice", "slippery", "rain", "raining", "snow", "snowing", "storm", "traffic", "fog", "foggy", "wet",
    "roads", "road works", "roadworks", "stairs", "weather", "wind", "windy", "flood", "flooding", "potholes",
    "construction", "accident", "closed", "detour", "battery", "tired", "drunk", "drink", "protest", "police",
    "roadblock", "crowd", "crowds", "pickpockets", "thieves", "rush hour", "strike", "delays", "diversion",
    "cyclists", "deer", "black ice", "heat", "hot", "sun", "lightning", "late", "text me when",
    "let me know when", "home safe", "stay safe", "stay warm", "mods", "moderators", "strict", "rules",
    "typo", "typos", "proofread", "spelling", "sources", "fact check",
))  # fmt: skip

# Suicide, said as a joke or by sound.
EUPHEMISMS: Final = lexicon((
    "sewer slide", "sewerslide", "sewer slid", "soup slide", "final yeet", "the final yeet", "yeet yourself",
    "forever nap", "permanent nap", "eternal nap", "permanent sleep", "eternal sleep", "big sleep",
    "dirt nap",
    "unalive", "unaliving", "unalived", "become unalive", "self delete", "self deleting", "self deletion",
    "alt f4 yourself", "alt f4 irl", "alt f4 life", "ctrl alt delete yourself", "commit sudoku", "an hero",
    "long walk off a short pier", "walk off a short pier", "neck rope", "backflip off",
    "kermit sewer slide", "game end yourself", "minecraft yourself", "commit toaster bath",
))  # fmt: skip
SUGGESTS: Final = frozenset(
    "go just try take do consider considered considering time should pls please plz kindly become commit"
    " could can maybe why tried".split()
)
# Rejection of the person ('nobody wants you', 'no one would notice').
REJECTION: Final = _compile(
    r"(?:nobody|no one|noone|no1) (?:wants|likes|loves|needs|would miss|will miss|would care|will care"
    rf"|would notice|will notice|cares|would even notice|would even care) (?:about )?(?:{_YOU}|it|if)",
    r"(?:nobody|no one|noone) (?:would|will) (?:notice|care|miss)",
    rf"(?:everyone|everybody) (?:hates|despises) {_YOU}",
    r"burden",
    r"spare us",
    r"do (?:us|everyone) a favou?r",
    r"waste of (?:space|air|oxygen|skin)",
    rf"better off without {_YOU}",
)
SUGGEST_WORDS: Final = 3  # how far before (or after: 'sewer slide time for you') it a suggestion reaches
_AFTER: Final = re.compile(rf"^ (?:\w+ )?(?:yourself|urself|for {_YOU})\b")

# Family or upbringing, and shame, regret or insult near it.
_RAISERS: Final = re.compile(
    rf"(?<![a-z0-9])(?:{_YOUR} (?:\w+ )?{_KIN}|whoever raised {_YOU}|(?:the \w+|what) (?:she|he|they) raised"
    rf"|raised {_YOU}|{_YOUR} (?:upbringing|bloodline|gene pool))(?![a-z0-9])"
)
SHAME: Final = lexicon((
    "ashamed", "shameful", "regret having", "regrets having", "regret you", "regret ever", "disappointment",
    "disappointed in you", "embarrassing", "embarrassed", "embarrassment", "was a mistake", "were a mistake",
    "for a reason", "stopped at zero", "should have stopped", "raised wrong", "aborted", "swallowed", "trash",
    "garbage", "brainless", "disgrace", "white trash", "trailer trash", "inbred", "by wolves", "by animals",
    "deadbeat", "loser", "losers", "idiot", "idiots", "clown", "clowns", "pathetic", "worthless",
    "failed miserably", "failed you", "failed as", "did a terrible job", "did a bad job", "did a poor job",
    "gave up on you", "given up on you", "give up on you", "imagine raising", "imagine having you",
    "stuck with you",
))  # fmt: skip
FAMILY_WORDS: Final = 8  # how far from the family word the shame or insult reaches


def intimidation(text: str, *, kind: bool) -> str | None:
    """The words that menace in canonical `text`, or None. `kind`: the text praises or thanks."""
    menace = MENACES.search(text)
    if menace and not HAZARDS.search(text):
        return menace.group()
    watched = SURVEILLANCE.search(text) or WHEREABOUTS.search(text)
    if not watched:
        return None
    warned = WARNINGS.search(text)
    if warned:
        return None if HAZARDS.search(text) else f"{watched.group()} … {warned.group()}"
    if kind or KIND.search(text) or not SURVEILLANCE.search(text):
        return None
    return watched.group()


def pushed_euphemism(text: str, *, addressed: bool) -> str | None:
    """A suicide euphemism in canonical `text` suggested to someone or said with rejection."""
    if SUPPORT.search(text):
        return None
    for found in EUPHEMISMS.finditer(text):
        before = text[: found.start()].split()[-SUGGEST_WORDS:]
        rejected = REJECTION.search(text)
        pushed = SUGGESTS.intersection(before) or _AFTER.match(text[found.end() :])
        if pushed or rejected or (addressed and "your" in before):
            return found.group() + (f" … {rejected.group()}" if rejected else "")
    return None


def family_insult(text: str, *, kind: bool) -> str | None:
    """Shame, regret or an insult within a few words of the person's family or upbringing, in a
    text that praises nobody ('your dad's jokes are embarrassing but we love him' teases)."""
    if kind:
        return None
    for family in _RAISERS.finditer(text):
        at = text.count(" ", 0, family.start())
        for shame in SHAME.finditer(text):
            if abs(text.count(" ", 0, shame.start()) - at) <= FAMILY_WORDS:
                return f"{family.group()} … {shame.group()}"
    return None
