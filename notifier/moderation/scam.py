"""Scam and bait spam: money, prize and crypto bait, adult lures and 'message me on …' lures,
read in the writer's own words, weighed with where the text's links go (a URL shortener hides
it; a domain outside a short list of well-known sites is unknown). One or two links are enough:
the link rule only counts links. Words inside a link's host count as bait too
('vbucks-free.xyz', 'secure-login-help.com'), phishing for an account is strong with a link,
and money given away for engagement ('$500 to the first 50 people to comment') holds without one."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from .normalize import canonical, lexicon
from .rules import MILD, Subject, Verdict, hosts
from .speech import speech

SHORTENED: Final = 0.95  # bait behind a shortener
UNKNOWN: Final = 0.9  # bait with a link to an unknown domain, or a lure with bait

SHORTENERS: Final = frozenset(
    {
        "bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "is.gd", "v.gd", "cutt.ly", "rb.gy",
        "shorturl.at", "ow.ly", "tiny.cc", "t.ly", "buff.ly", "rebrand.ly", "s.id", "tr.im", "bl.ink",
        "short.io", "shorte.st", "adf.ly", "lnkd.in", "tiny.one", "clck.ru", "qr.ae",
    }
)  # fmt: skip
WELL_KNOWN: Final = frozenset(
    {
        "youtube.com", "youtu.be", "github.com", "gitlab.com", "wikipedia.org", "wikimedia.org",
        "google.com", "twitter.com", "x.com", "instagram.com", "facebook.com", "reddit.com",
        "bbc.co.uk", "bbc.com", "nytimes.com", "theguardian.com", "medium.com", "linkedin.com",
        "spotify.com", "apple.com", "microsoft.com", "stackoverflow.com", "imgur.com", "twitch.tv",
        "python.org", "mozilla.org", "archive.org", "vimeo.com", "flickr.com", "tumblr.com",
    }
)  # fmt: skip
_TRUSTED_SUFFIXES: Final = (".gov", ".edu", ".gov.uk", ".ac.uk", ".mil")
_SHORTENER_NAMED: Final = re.compile(
    r"(?<![\w.-])(?:" + "|".join(re.escape(s) for s in sorted(SHORTENERS, key=len, reverse=True)) + r")/"
)
_MONEY_AMOUNT: Final = re.compile(r"[$€£]\s?\d|\d[\d,.]*\s?(?:[$€£]|usd|eur|dollars|euros|k a week)")
# Money handed out for comments, likes or shares (canonical own words; the amount is found apart).
_FOR_ENGAGEMENT: Final = re.compile(
    r"(?<![a-z0-9])(?:giving|give away|giveaway|sending|send|paying)(?![a-z0-9]).*"
    r"(?<![a-z0-9])(?:first \d+|everyone who|anyone who|comment|like|share|retweet|follow|repost)"
)

# Canonical phrases by kind of bait. Adult, crypto and prize bait is strong: one kind is
# enough with an unknown link; the weak kinds need a second.
BAIT: Final[dict[str, tuple[str, ...]]] = {
    "prize": (
        "won", "winner", "prize", "giveaway", "gift card", "voucher", "reward", "selected", "chosen",
        "congratulations", "robux", "nitro", "free iphone", "airpods", "vbucks", "v bucks", "skins",
        "generator", "claim your", "ve been picked", "been selected", "been chosen", "ambassador",
    ),
    "crypto": ("bitcoin", "btc", "eth", "crypto", "usdt", "airdrop", "wallet", "nft", "doubler"),
    "adult": (
        "private pics", "spicy pics", "exclusive content", "hot singles", "lonely", "cutie", "sexy",
        "nudes", "meet you", "surprise for you", "posted about you", "handsome", "babe", "for fun",
        "caught my eye", "more private", "somewhere private", "single ladies", "single men",
        "exclusive pics", "spicy", "nsfw", "onlyfans", "18+",
    ),
    "money": (
        "earn", "income", "profit", "returns", "invest", "invested", "double your", "make money",
        "cash", "per day", "daily", "10x", "working from home", "per hour", "cash app", "cashapp",
        "paypal", "venmo", "return", "guaranteed return", "2x", "3x", "5x", "100x",
    ),
    "lure": (
        "dm me", "message me", "check my profile", "click my profile", "my bio", "link in bio",
        "telegram", "whatsapp", "kik", "snap", "add me", "chat with me", "privately", "contact him",
        "contact her", "ask me how", "snapchat", "text me", "tg", "my tg", "signal", "wechat",
        "hit me up", "in my bio", "send us a dm", "send me a dm", "dm us", "dm", "inbox me", "add me on",
    ),
    # a stranger's opener: weak alone, a romance or bait scam's first line with a lure
    "stranger": (
        "saw your profile", "saw your posts", "saw your pics", "saw your photos", "saw your pictures",
        "i m new here", "im new here", "came across your profile", "admire your profile", "like your profile",
        "interested to know you", "know you more", "know you better", "get to know you", "be friends",
        "new to this app", "new on this app", "like your pics", "like your photos", "love your pics", "widow",
        "widower", "offshore", "your smile", "come here often", "dear friend",
    ),
    "promo": ("followers", "likes for", "promo"),
    "free": ("free",),
    "urgency": ("now", "act now", "limited", "first 100", "guaranteed", "24 hours", "today only"),
    "account": (
        "verify", "suspended", "account will", "login", "log in", "password", "flagged", "locked",
        "unusual activity", "restricted", "disabled", "confirm your", "secure", "billing", "payment details",
        "payment method", "bank details", "card details", "membership", "update your", "payout", "on hold",
        "identity", "appeal", "limited", "restore access", "closure", "deactivated", "violation", "sign in",
    ),
}  # fmt: skip
# A greeting with an endearment, from someone the person does not know ('hello dear', 'hi sweetheart')
_ENDEARED: Final = re.compile(
    r"^(?:\w+ )?(?:hi|hello|hey|hiya|good (?:day|morning|evening|afternoon)) (?:there )?(?:my )?"
    r"(?:dear|sweetheart|sweetie|beautiful|gorgeous|handsome|pretty|darling|honey|beloved|love)\b"
)
# Asking to carry on somewhere private ('can we talk on whatsapp', 'message me privately')
_MOVE: Final = re.compile(
    r"(?<![a-z0-9])(?:talk|chat|continue|message|text|add|contact|reach|write|email|mail|dm|inbox|speak|move"
    r"|connect|talking|chatting)(?: [a-z0-9]+){0,3} (?:(?:on|via|through|over|at|in) (?:whatsapp|whats app|wa"
    r"|telegram|tg"
    r"|hangouts|google chat|kik|signal|snap|snapchat|wechat|line|viber|skype|imo|email|gmail|private)"
    r"|privately|in private)(?![a-z0-9])"
)
# Work talk that explains asking for an email ('saw your profile, can we chat about the job via email')
_BUSINESS: Final = lexicon((
    "job", "role", "position", "interview", "hiring", "recruiter", "project", "collab", "commission", "order",
    "client", "contract", "invoice", "meeting",
))  # fmt: skip
# Trading-signal and 'passive income' bait: a promise of money made for the reader ('pays out daily',
# '98% win rate', '$300 a day'), with a way in ('join before registration closes', 'last spots') or a
# messenger's invite link, and a link to an unknown host.
_EARNING: Final = re.compile(
    r"(?<![a-z0-9])(?:pays? out|paying out|payouts?|pays (?:you|members|everyone)|paying (?:you|members|\d+)"
    r"|passive income|win rate|trade calls|trading (?:bot|signals|group)|signals? (?:bot|group|channel|room)"
    r"|copy (?:my |our )?trades|copy trading|forex|made \d+k?|auto trading|arbitrage"
    r"|(?:daily|weekly|monthly|guaranteed|\d+ ?x?) (?:profits?|returns|roi|yield)"
    r"|earn(?:s|ed|ing)? (?:\w+ ){0,2}(?:money|cash|income|profits?|while you sleep|from home|daily|weekly"
    r"|monthly|a day|a week|per day|per week|\d\w*)"
    r"|(?:\d+ ?k?) (?:\w+ ){0,3}(?:a day|a week|per day|daily|every (?:day|morning|week|24h|24 hours|hour)"
    r"|this week|this month))(?![a-z0-9])"
)
_MULTIPLIED: Final = re.compile(r"(?<![\w.])\d+\s?x(?!\w)")  # '10x returns', over folded text
_JOIN: Final = lexicon((
    "join", "joining", "registration", "register", "sign up", "signup", "spots", "seats", "slots",
    "places left", "closes", "closing", "fills", "filling", "last chance", "members", "vip", "group",
    "channel",
))  # fmt: skip
MESSENGERS: Final = frozenset(
    {"t.me", "telegram.me", "wa.me", "chat.whatsapp.com", "whatsapp.com", "discord.gg"}
)
STRONG: Final = frozenset({"prize", "crypto", "adult"})
PHISHING: Final = "account"  # strong when a link to an unknown domain comes with it


def _known(host: str) -> bool:
    labels = host.split(".")
    tails = {".".join(labels[i:]) for i in range(len(labels))}
    return bool(tails & WELL_KNOWN) or host.endswith(_TRUSTED_SUFFIXES)


class ScamRule:
    name = "scam"

    def __init__(self) -> None:
        self._bait = {kind: lexicon(words) for kind, words in BAIT.items()}
        self._join = _JOIN

    def check(self, subjects: Sequence[Subject]) -> list[Verdict | None]:
        return [self._one(s.text) for s in subjects]

    def _one(self, text: str) -> Verdict | None:
        said = speech(text)
        found = [h.lower() for h in hosts(said.outside)]
        found += [m.group().rstrip("/") for m in _SHORTENER_NAMED.finditer(said.outside)]
        shortened = sorted({h for h in found if h in SHORTENERS})
        unknown = sorted({h for h in found if h not in SHORTENERS and not _known(h)})
        host_words = canonical(" ".join(re.sub(r"[.\-_]", " ", h) for h in unknown)).text
        kinds = sorted(k for k, p in self._bait.items() if p.search(said.own.text) or p.search(host_words))
        money = _MONEY_AMOUNT.search(said.outside)
        if money and "money" not in kinds:
            kinds = sorted([*kinds, "money"])
        strong = bool(STRONG.intersection(kinds)) or (PHISHING in kinds and bool(unknown))
        bait = ", ".join(kinds)
        if money and _FOR_ENGAGEMENT.search(said.own.text):
            return Verdict(self.name, f"money given away for engagement ({bait})", UNKNOWN)
        if shortened and kinds:
            return Verdict(
                self.name, f"bait ({bait}) behind a link shortener: {', '.join(shortened)}", SHORTENED
            )
        if unknown and (strong or len(kinds) >= 2):
            return Verdict(self.name, f"bait ({bait}) with a link to {', '.join(unknown)}", UNKNOWN)
        joining = self._join.search(said.own.text) or MESSENGERS.intersection(unknown)
        if unknown and joining and _EARNING.search(said.own.text):
            return Verdict(
                self.name, f"money-making promise with a link to join: {', '.join(unknown)}", UNKNOWN
            )
        stranger = "stranger" in kinds or bool(_ENDEARED.match(said.own.text))
        if stranger and _MOVE.search(said.own.text) and not _BUSINESS.search(said.own.text):
            return Verdict(self.name, f"a stranger's opener moving to a private channel ({bait})", UNKNOWN)
        # money promised, not a word like 'daily' or 'invest' alone
        promised = bool(money or _MULTIPLIED.search(said.outside) or _EARNING.search(said.own.text))
        if "lure" in kinds and (strong or promised or len(kinds) >= 3):
            return Verdict(self.name, f"lure to a private channel with bait ({bait})", UNKNOWN)
        if shortened:
            return Verdict(self.name, f"link shortener hides the destination: {', '.join(shortened)}", MILD)
        return None
