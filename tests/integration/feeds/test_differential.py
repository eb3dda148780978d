"""The inbox against its former self: random histories (duplicates, permutations, read marks,
moderation recalls, small caps) applied by the product (its direct apply and its scripts, or its
scripts alone) and by the frozen oracle
(tests/integration/feeds/oracle) on one redis-server end in the same inboxes, unread counts,
change logs, as the clients read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from feeds import changelog
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan, retract
from feeds.limits import FeedLimits
from schemas import keys
from schemas.cursor import START, Cursor
from schemas.events import Event
from tests.unit.builders import DAY_S, comment, comment_deleted, follow, like, mention, unfollow, unlike

from .oracle import OracleInbox

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USERS = ("u0", "u1", "u2", "u3")
OWNERS = {"p0": "u0", "p1": "u1"}
TIMES = (0, 1, 2, 3600, DAY_S, DAY_S + 1)  # ties, and a second aggregation window
TIGHT = (0, 0, 1, 1, 2, DAY_S)  # more ties: around the cap's floor (lua/common.lua below_floor)
TEXTS = ("hi", 'quote " and \\ back', "line\nbreak", "ünï €", "")
LIMITS = (
    FeedLimits(),
    FeedLimits(max_groups=3, max_changes=7, shown_actors=2),  # the cap drops groups; the log trims
    FeedLimits(max_groups=2, max_changes=4, shown_actors=1),
    FeedLimits(max_groups=1, max_changes=50, shown_actors=1),  # every new group drops one
)
_DAY = like("u0", "p0", "u0", 0).at_ms // FeedLimits().aggregation_window_ms  # the windows' numbers
GROUPS = (
    *(f"like:{post}:{window}" for post in OWNERS for window in (_DAY, _DAY + 1)),
    *(f"follow:{window}" for window in (_DAY, _DAY + 1)),
    "comment:c0-u1-p0",
    "mention:p0~u1",
    "nope:x",
)


@st.composite
def events(draw: st.DrawFn, times: Sequence[float] = TIMES) -> Event:
    kind = draw(st.sampled_from(("like", "unlike", "follow", "unfollow", "comment", "deleted", "mention")))
    actor, post, t = (
        draw(st.sampled_from(USERS)),
        draw(st.sampled_from(sorted(OWNERS))),
        draw(st.sampled_from(times)),
    )
    owner = OWNERS[post]
    author = draw(st.sampled_from(USERS)) if kind == "deleted" else actor  # anyone may delete a comment
    cid = f"c{draw(st.integers(0, 1))}-{author}-{post}"
    match kind:
        case "like":
            return like(actor, post, owner, t)
        case "unlike":
            return unlike(actor, post, owner, t)
        case "follow":
            return follow(actor, draw(st.sampled_from(USERS)), t)
        case "unfollow":
            return unfollow(actor, draw(st.sampled_from(USERS)), t)
        case "comment":
            return comment(actor, cid, post, owner, t, text=draw(st.sampled_from(TEXTS)))
        case "deleted":
            return comment_deleted(
                actor, cid, post, owner, t, tuple(draw(st.lists(st.sampled_from(USERS), max_size=3)))
            )
        case _:
            users = tuple(draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=3)))
            return mention(actor, users, post, draw(st.none() | st.just(cid)), t)


@dataclass(frozen=True, slots=True)
class Apply:
    ops: list[ItemOp]


@dataclass(frozen=True, slots=True)
class Read:
    user: str
    groups: list[str] | None  # None: all


Step = Apply | Read


@st.composite
def histories(draw: st.DrawFn) -> tuple[FeedLimits, list[Step]]:
    """A log of events, delivered shuffled with redeliveries, in batches; read marks and
    moderation recalls of some events interleaved. Drawn up front (no draws inside the loop)."""
    limits = draw(st.sampled_from(LIMITS))
    log = draw(st.lists(events(draw(st.sampled_from((TIMES, TIGHT)))), min_size=1, max_size=24))
    log = [msgspec.structs.replace(e, id=f"{i:03}-{e.id}") for i, e in enumerate(log)]
    again = draw(st.lists(st.sampled_from(log), max_size=8))
    delivered: list[Event] = draw(st.permutations([*log, *again]))
    ops = [op for event in delivered for op in plan(event, limits)]
    steps: list[Step] = []
    at = 0
    while at < len(ops):
        size = draw(st.integers(1, 20))
        steps.append(Apply(ops[at : at + size]))
        at += size
        if draw(st.integers(0, 3)) == 0:
            groups = draw(st.none() | st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3))
            steps.append(Read(draw(st.sampled_from(USERS)), groups))
        if draw(st.integers(0, 5)) == 0:  # a moderator recalls an event, maybe twice
            steps.append(Apply(retract(draw(st.sampled_from(log)), limits)))
    return limits, steps


def oracle_payload(payload: bytes) -> Any:
    """A change payload without what the oracle predates: `unseen` (the seen-vs-read badge, added
    to every rendered change after the oracle was frozen; tests/integration/feeds/test_seen.py
    covers it)."""
    change = orjson.loads(payload)
    change.pop("unseen")
    return change


async def product_views(redis: Redis, inbox: Inbox, user: str) -> dict[str, Any]:
    pages, before = [], None
    while True:
        page = await inbox.page(user, before, 2)
        pages.append(([orjson.loads(g) for g in page.groups], page.more, page.unread))
        before = page.next_before
        if before is None:
            break
    tail = await changelog.tail(redis, user)
    resumes: list[Any] = []
    log: Any = await changelog.read_after(redis, user, START, 10_000)
    if isinstance(log, changelog.Replay):
        # resume from half-way, with the change's own cursor, and with another check
        half = log.changes[len(log.changes) // 2].cursor if log.changes else tail
        for cursor in (half, Cursor(half.epoch, half.number, half.check + 1), tail):
            resumed = await changelog.read_after(redis, user, cursor, 10_000)
            resumes.append(
                [oracle_payload(c.payload) for c in resumed.changes]
                if isinstance(resumed, changelog.Replay)
                else ("refetch", resumed.tail.number)
            )
        log = (
            "replay",
            [c.cursor.number for c in log.changes],
            [oracle_payload(c.payload) for c in log.changes],
        )
    else:
        log = ("refetch", log.tail.number)
    return {
        "pages": pages,
        "epoch": tail.epoch != START.epoch,
        "last": tail.number,
        "log": log,
        "resumes": resumes,
        "retained": await redis.llen(keys.changelog(user)),  # how far back a resume reaches
    }


async def oracle_views(redis: Redis, oracle: OracleInbox, user: str) -> dict[str, Any]:
    pages, before = [], None
    while True:
        page = await oracle.page(user, before, 2)
        groups = [orjson.loads(g) for g in page.groups]
        pages.append((groups, page.more, page.unread))
        if not page.more or not groups:
            break
        before = (groups[-1]["last_at"], groups[-1]["id"])
    _, epoch, last, last_check = await oracle.replay(user, "", 0, 0, 0)
    epoch, last, last_check = epoch.decode(), int(last), int(last_check)
    resumes: list[Any] = []
    kind, _, number, *rest = await oracle.replay(user, START.epoch, 0, 0, 10_000)
    log: Any = ("refetch", int(number))
    if kind == b"replay":
        checks, payloads = [int(c) for c in rest[0::2]], [orjson.loads(p) for p in rest[1::2]]
        numbers = [int(number) + i for i in range(len(payloads))]
        half = (numbers[len(numbers) // 2], checks[len(numbers) // 2]) if numbers else (last, last_check)
        for after, check in (half, (half[0], half[1] + 1), (last, last_check)):
            if epoch == START.epoch and (after, check) != (0, 0):
                # before the log is only -.0-0: the product refuses another such cursor (the
                # frozen oracle replayed from the start)
                resumes.append(("refetch", 0))
                continue
            kind, _, number, *rest = await oracle.replay(user, epoch, after, check, 10_000)
            resumes.append(
                [orjson.loads(p) for p in rest[1::2]] if kind == b"replay" else ("refetch", int(number))
            )
        log = ("replay", numbers, payloads)
    return {
        "pages": pages,
        "epoch": epoch != START.epoch,
        "last": last,
        "log": log,
        "resumes": resumes,
        "retained": await redis.llen(keys.changelog(user)),
    }


async def run(steps: Sequence[Step], inbox: Inbox, oracle: OracleInbox) -> None:
    for step in steps:
        if isinstance(step, Apply):
            assert await inbox.apply(step.ops) == [None] * len(step.ops)
            assert all(isinstance(r, int) for r in await oracle.apply(step.ops))
        else:
            assert await inbox.mark_read(step.user, step.groups) == await oracle.mark_read(
                step.user, step.groups
            )


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "script"])
@settings(max_examples=80, deadline=None)
@given(histories())
async def test_the_product_and_the_oracle_show_the_same_views(
    redis_url: str, direct: bool, history: tuple[FeedLimits, list[Step]]
) -> None:
    """`direct`: the fan-out's own apply (users nobody listens to: feeds/direct.py, handing to
    the script what it does not mirror); else every item by the script (lua/apply.lua)."""
    limits, steps = history
    product = Redis.from_url(
        redis_url.replace("/0", "/1")
    )  # away from the function-scoped `redis` fixture's db
    frozen = Redis.from_url(redis_url.replace("/0", "/2"))
    try:
        await product.flushdb()
        await frozen.flushdb()
        inbox, oracle = Inbox(product, limits, direct=direct), OracleInbox(frozen, limits)
        await run(steps, inbox, oracle)
        for user in USERS:
            assert await product_views(product, inbox, user) == await oracle_views(frozen, oracle, user), user
    finally:
        await product.aclose()
        await frozen.aclose()
