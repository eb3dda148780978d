"""The target detector and the scam rule on their own, and the quote-aware blocklist: aimed
abuse holds, the same words aimed at nobody, in a quote, or as praise do not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from notifier.moderation.normalize import canonical, unmask
from notifier.moderation.policy import Action, Policy
from notifier.moderation.rules import BUILTIN_BLOCKLIST, BlocklistRule, Subject, Verdict
from notifier.moderation.scam import ScamRule
from notifier.moderation.speech import addressed_at, speech
from notifier.moderation.targeted import TargetedRule
from notifier.runtime.settings import ModerationSettings

POLICY = Policy(ModerationSettings())


def one(rule: TargetedRule | ScamRule | BlocklistRule, text: str) -> Verdict | None:
    return rule.check([Subject(text)])[0]


class FixedModel:
    def __init__(self, scores: dict[str, float]) -> None:
        self.seen: list[str] = []
        self._scores = scores

    def scores(self, texts: Sequence[str]) -> list[float]:
        self.seen += texts
        return [self._scores.get(t, 0.0) for t in texts]


# -- normalization of starred and spaced forms ----------------------------------------------------


@pytest.mark.parametrize(
    ("token", "word"),
    [("f***", "fuck"), ("f***ing", "fucking"), ("sh*t", "shit"), ("a**hole", "asshole"), ("b*tch", "bitch")],
)
def test_starred_words_are_read_as_the_word_they_hide(token: str, word: str) -> None:
    assert unmask(token) == word


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("you're a d i c k h e a d", "you re a dickhead"),  # the article is not part of the word
        ("u r a b1tch", "u r a bitch"),  # chat words are not a spelled-out word
        ("S c u n t h o r p e", "scunthorpe"),  # a spaced name is one word, not 'cunt'
        ("y0u'r3 4 b*7ch", "you re 4 bitch"),  # leetspeak inside a starred word
        ("f u c k  y o u  b r a d", "fuck you brad"),  # a spelled-out run read as words, then a name
        ("d i c k e n s", "dickens"),  # not all known words, nor 'you' before the rest
    ],
)
def test_spaced_and_starred_forms(raw: str, expected: str) -> None:
    assert canonical(raw).text == expected


def test_quotes_are_set_apart_unless_they_are_the_whole_text() -> None:
    said = speech('he called me a "stupid idiot" in front of everyone')
    assert said.quoted.text == "stupid idiot"
    assert "idiot" not in said.own.text
    whole = speech('"you are an idiot"')
    assert whole.own.text == "you are an idiot" and whole.quoted.text == ""
    assert speech("don't say you're sorry").quoted.text == ""  # apostrophes open no quote
    single = speech("she told her brother 'you're a stupid head' at dinner")
    assert single.quoted.text == "you re a stupid head"  # nor do they close one


def test_addressing_is_you_or_a_mention_not_a_figure_of_speech() -> None:
    assert addressed_at(speech("@mike shut up").own) == [0]
    assert addressed_at(speech("ur so ugly").own) == [0]
    assert addressed_at(speech("you know what, this printer").own) == []
    assert addressed_at(speech("thank you so much").own) == []


# -- abuse aimed at someone ---------------------------------------------------------------------------

TARGETED = TargetedRule()

AIMED = [
    "you are a fucking idiot",
    "@mike shut up you stupid moron",
    "ur so ugly lmao",
    "nobody wants you here, idiot",
    "you're a d i c k h e a d",
    "@zoe you're a b*tch",
    "fuck off you creep",
    "go f yourself",
    "f - o f f @max",
    "honestly you are the most annoying idiot here",
    "Marco, what a pathetic excuse for a human being",  # a name called out, then an insult
    "go touch grass, loser",  # an insult called out at the end of a clause
    "imagine being this braindead",
    "lmao ur s0 ug1y",  # i/l look-alikes in every lexicon
    "you're a walking L, bozo",  # slang
    "honestly you are mid at everything",  # 'mid' said of a person
    "nobody asked + ratio",
    "you sound like a dying goat",  # praise spoiled ('goat')
    "f u c k  y o u  Daniel",  # spelled out, aimed by name
    "Priya you are a f u c k i n g  l o s e r",
    "everyone says you're a pathetic loser",  # 'everyone says' is the writer's own verdict
]


@pytest.mark.parametrize("text", AIMED)
def test_insults_aimed_at_someone_hold(text: str) -> None:
    verdict = one(TARGETED, text)
    assert verdict is not None and POLICY.action_for(verdict) is Action.HOLD, text


@pytest.mark.parametrize(
    "text", ["I will find you and hurt you", "watch your back @ken", "I'm going to k i l l you"]
)
def test_threats_hold_at_full_score(text: str) -> None:
    verdict = one(TARGETED, text)
    assert verdict is not None and verdict.score == 1.0 and "threat" in verdict.reason


NOT_AIMED = [
    "that was f***ing awesome",
    "stupid printer jammed again",
    "I'm such an idiot, I left my phone at home",
    "you know what, this stupid printer jammed again",
    "you are fucking amazing",
    "shut up and take my money",
    "you killed it tonight!",
    "@airline you lost my bag again, terrible service",
    'my boss yelled "you idiot" at me today',
    "I hate traffic",
    "Shit, I forgot my keys",  # an interjection is not a name
    "he is a total loser in that movie",  # described, not called out
    "this pizza is the shit, no joke",
    "you look like a movie star in that photo",  # compared to praise
    "you absolute muppet, you forgot the cake again 😂",  # teasing with a laugh
    "do us a favour and bring snacks tonight",
    "the whole world would be better without mosquitoes",
    "I know where you got that jacket",
    "I'm coming for your high score tonight",
    "we're coming for you next season, bring your best squad",  # a sporting boast
    "I know which car you drive, I'll pick you up at 8",  # watching, with a kind offer
    "be careful walking home, the roads are icy",  # a warning with its hazard
    "the boss said watch your back before the audit lol",  # reported, unquoted
    "that album is mid",  # an opinion of a thing
    "you're mid-way through the season already?",
    "my grades took a sewer slide this term",  # a euphemism pushed on nobody
    "your mom raised a kind kid, she must be proud",
    "you look like an old friend of mine",
    "my toddler told her brother 'you're a stupid head' and cried",  # quoted, apostrophes inside
    "my son told his sister you're a smelly idiot, so no tablet tonight",  # an anecdote
    "I'll break your record at the next meet",  # a record is no body part
    "can I pick your brain about the budget tomorrow?",
    "this chorus is going to break your heart",
]


@pytest.mark.parametrize("text", NOT_AIMED)
def test_profanity_aimed_at_nobody_praise_and_quotes_pass(text: str) -> None:
    assert one(TARGETED, text) is None, text


def test_the_model_counts_only_for_addressed_clauses_without_praise() -> None:
    model = FixedModel(
        {"you smell of sewage": 0.97, "you re a fucking legend": 0.99, "this is ridiculous": 0.95}
    )
    rule = TargetedRule(model)
    found = rule.check(
        [
            Subject("you smell of sewage"),
            Subject("you're a fucking legend"),
            Subject("spineless"),
            Subject("@airline you lost my bag again, this is ridiculous"),
        ]
    )
    assert found[0] is not None and found[0].score >= 0.9 and "0.97" in found[0].reason
    assert found[1] is None and found[2] is None and found[3] is None
    # praise and unaddressed text are not asked; of a text, only its addressed clauses
    assert model.seen == ["you smell of sewage", "atmention you lost my bag again"]


# -- scam and bait ----------------------------------------------------------------------------------

SCAM = ScamRule()


@pytest.mark.parametrize(
    "text",
    [
        "Congratulations! You've won a $500 gift card, claim it here: bit.ly/3xYzAb",
        "double your ETH in 24 hours, official event: eth-double.io",
        "hot singles in your area want to meet you: datez.site",
        "hey cutie check my profile for my private pics",
        "earn 300$ daily from your phone, link in my bio",
        "free nitro g i v e a w a y discord-nitro-gift.ru",
    ],
)
def test_bait_with_unknown_or_shortened_links_or_lures_holds(text: str) -> None:
    verdict = one(SCAM, text)
    assert verdict is not None and POLICY.action_for(verdict) is Action.HOLD, text


@pytest.mark.parametrize(
    "text",
    [
        "I won a prize at the county fair today!",
        "new video is up! https://youtube.com/watch?v=abc123",
        "free tickets for the community concert, details on https://www.city.gov/events",
        "DM me if you want to join our running club",
        "I wrote about how I earn money as a freelance designer: https://janedesigns.me/blog",
        'a scammer messaged me "you won a prize, click bit.ly/xyz" lol',
        "text me when you get home safe",
        "add me on discord if you want to play tonight",
        "my fantasy league pays out to the winner in may, join us!",  # no link
        "the weather bot posts daily, join if you like discord.gg/weathernerds",  # no money promised
        "I'm giving away my old sofa to the first person who comments",
        "log in to the portal at school.edu to see grades",
        "our charity run raised $3,000, thank you all",
        "hi dear, grandma finally has whatsapp now!",  # an endearment, no move to a private channel
        "saw your profile, can we chat about the design job via email?",  # work talk
        "reminder: update your billing address before renewal",  # account words, no link
    ],
)
def test_bait_words_without_a_lure_or_unknown_link_pass(text: str) -> None:
    assert one(SCAM, text) is None, text


def test_a_bare_shortener_only_flags() -> None:
    verdict = one(SCAM, "look at this https://bit.ly/abc")
    assert verdict is not None and POLICY.action_for(verdict) is Action.FLAG


# -- the blocklist in quotes --------------------------------------------------------------------------


def test_severe_terms_only_in_a_quote_or_reported_speech_flag_instead_of_hold() -> None:
    rule = BlocklistRule(BUILTIN_BLOCKLIST)
    quoted = one(rule, 'someone commented "kys" on my post and I reported it')
    assert quoted is not None and POLICY.action_for(quoted) is Action.FLAG and "quoted" in quoted.reason
    reported = one(rule, "my brother told me to go die when I beat him at chess lol")
    assert (
        reported is not None and POLICY.action_for(reported) is Action.FLAG and "reported" in reported.reason
    )
    own = one(rule, "kys loser")
    assert own is not None and POLICY.action_for(own) is Action.HOLD


# -- classes, not strings: veiled threats, self-harm incitement, comparisons, vocatives -------------


@pytest.mark.parametrize(
    ("rule", "text", "why"),
    [
        (TARGETED, "it would be a shame if something happened to your car", "veiled threat"),
        (TARGETED, "we know which house your mum lives in", "intimidation"),
        (TARGETED, "I've clocked what time you leave the office. think about that", "intimidation"),
        (TARGETED, "your address wasn't hard to find, Leo", "intimidation"),
        (TARGETED, "think hard before you comment again", "intimidation"),
        (TARGETED, "why not try the forever nap, nobody would notice", "suicide euphemism"),
        (TARGETED, "go s3wer sl1de", "suicide euphemism"),
        (TARGETED, "whoever raised you should be ashamed of themselves", "family"),
        (TARGETED, "your parents must regret having you", "family"),
        (TARGETED, "say that again and see what happens", "veiled threat"),
        (TARGETED, "you'll get what's coming to you", "veiled threat"),
        (TARGETED, "the world is better off without u", "incitement to self-harm"),
        (TARGETED, "do us all a favor and just stop breathing", "incitement to self-harm"),
        (TARGETED, "nobody is going to miss you", "incitement to self-harm"),
        (TARGETED, "your face looks like a dropped pie", "dehumanising comparison"),
        (TARGETED, "one more comment and I'm breaking your legs", "threat of bodily harm"),
        (TARGETED, "gonna put u in a wheelchair", "threat of bodily harm"),
        (TARGETED, "u have the brain of a goldfish", "dehumanising comparison"),
        (SCAM, "hi dear, your profile caught my eye, add me on snap: lily_x99", "lure"),
        (SCAM, "hey, saw your posts, wanna talk somewhere more private? my tg is @luna_x", "lure"),
        (SCAM, "ur account has been flagged, log in here to keep it: secure-login-help.com", "link"),
        (SCAM, "free skins at vbucks-free.xyz", "link"),
        (SCAM, "hello dear, I would like to know you better, can we talk on telegram?", "private channel"),
        (SCAM, "your payout is on hold, confirm your bank details: payout-desk.support", "link"),
        (SCAM, "Cash app giving $500 to first 50 people to comment 'me'", "engagement"),
        (SCAM, "copy our trades, 5% payouts every 24h, last seats: t.me/fxvip", "money-making promise"),
    ],
)
def test_each_class_of_abuse_holds_and_is_named_in_the_reason(
    rule: TargetedRule | ScamRule, text: str, why: str
) -> None:
    verdict = one(rule, text)
    assert verdict is not None and POLICY.action_for(verdict) is Action.HOLD, text
    assert why in verdict.reason, verdict.reason


def test_a_veiled_threat_said_laughing_only_flags() -> None:
    verdict = one(TARGETED, "I know where you live haha, see you at 8")
    assert verdict is not None and POLICY.action_for(verdict) is Action.FLAG
    assert "said laughing" in verdict.reason


def test_a_threat_of_harm_is_excused_only_as_a_joke_between_friends() -> None:
    mocking = one(TARGETED, "keep talking and I will punch your lights out lol")
    assert mocking is not None and POLICY.action_for(mocking) is Action.HOLD
    friends = one(TARGETED, "steal my fries again and I'll break your legs haha love you bestie")
    assert friends is not None and POLICY.action_for(friends) is Action.FLAG
    assert "said laughing" in friends.reason
