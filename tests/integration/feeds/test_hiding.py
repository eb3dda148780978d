"""Mutes and blocks on a real redis-server, through the fan-out's own apply: what already
reached the inbox leaves it (unread corrected, changes logged), an undo lets through only what
happens after it, and a block severs the follows between two users whatever the order it and
the follows are applied in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import permutations

import orjson
import pytest
from redis.asyncio import Redis

from feeds.graph import FollowGraph
from feeds.hiding import Hiding
from feeds.home import HomeFeeds
from feeds.inbox import Inbox
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore, Relation
from notifier.fanout.consumer import apply_events
from notifier.runtime.eventlog import LoggedEvent
from schemas.events import Comment, Event, Follow, Like, Mention, PostCreated, PostDeleted

from ..views import at, inbox_view, logged_changes

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

LIMITS = FeedLimits()


def ms(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1000)


async def apply(redis: Redis, *events: Event) -> None:
    logged = [LoggedEvent(f"{n}-0".encode(), e, "test", 0) for n, e in enumerate(events, 1)]
    assert await apply_events(Inbox(redis, LIMITS), LIMITS, logged) == {}


async def relate(redis: Redis, user: str, relation: Relation, other: str, on: bool, t: float) -> int:
    """What the API does for PUT/DELETE /v1/me/{relation}/{other}."""
    await PreferenceStore(redis).relate(user, relation, other, on, ms(t))
    if not on:
        return 0
    hiding = Hiding(redis, LIMITS)
    if relation == "mutes":
        return await hiding.mute(user, other, ms(t))
    if relation == "blocks":
        return await hiding.block(user, other, ms(t))
    return await hiding.mute_post(user, other, ms(t))


def like(eid: str, actor: str, post: str, owner: str, t: float) -> Like:
    return Like(id=eid, actor=actor, occurred_at=at(t), post=post, owner=owner)


async def shown(redis: Redis, user: str) -> list[tuple[str, list[str]]]:
    groups, _, _ = await inbox_view(Inbox(redis, LIMITS), user)
    return [(g["id"].split(":")[0] + ":" + g.get("post", ""), g["actors"]) for g in groups]


async def test_a_mute_takes_the_actors_items_out_and_an_unmute_lets_only_later_ones_in(redis: Redis) -> None:
    await apply(
        redis,
        like("l-1", "ann", "p1", "olga", 1),
        like("l-2", "cid", "p1", "olga", 2),
        Follow(id="f-1", actor="ann", occurred_at=at(3), user="olga"),
        Comment(id="c-1", actor="ann", occurred_at=at(4), post="p1", owner="olga", comment="c1", text="hi"),
        Mention(id="m-1", actor="ann", occurred_at=at(5), post="p2", users=["olga"]),
        like("l-3", "cid", "p9", "olga", 6),
    )
    assert (await inbox_view(Inbox(redis, LIMITS), "olga"))[1] == 5
    before = len(await logged_changes(redis, "olga"))
    assert await relate(redis, "olga", "mutes", "ann", True, 10) == 4
    assert await shown(redis, "olga") == [("like:p9", ["cid"]), ("like:p1", ["cid"])]
    _, unread, _ = await inbox_view(Inbox(redis, LIMITS), "olga")
    assert unread == 2
    changes = (await logged_changes(redis, "olga"))[before:]
    assert sorted(c["op"] for c in changes) == ["remove", "remove", "remove", "upsert"]
    assert changes[-1]["unread"] == 2
    assert await relate(redis, "olga", "mutes", "ann", True, 11) == 0  # a repeat finds nothing
    assert await FollowGraph(redis).counts("olga") == (1, 0)  # a mute is not a block

    await relate(redis, "olga", "mutes", "ann", False, 20)
    # an old activity (replayed, or late) stays hidden; a new one shows
    await apply(redis, like("l-1", "ann", "p1", "olga", 1), like("l-4", "ann", "p5", "olga", 15))
    assert await shown(redis, "olga") == [("like:p9", ["cid"]), ("like:p1", ["cid"])]
    await apply(redis, like("l-5", "ann", "p1", "olga", 30))
    assert ("like:p1", ["ann", "cid"]) in await shown(redis, "olga")
    # an undo repeated (a client's retry), and an undo of what never was, change nothing: what
    # the other did until then still shows, late or replayed
    store = PreferenceStore(redis)
    assert await store.relate("olga", "mutes", "ann", False, ms(40)) is False
    for relation in ("mutes", "blocks"):
        assert await store.relate("olga", relation, "dee", False, ms(40)) is False
    await apply(redis, like("l-6", "ann", "p6", "olga", 35), like("l-7", "dee", "p7", "olga", 36))
    now = await shown(redis, "olga")
    assert ("like:p6", ["ann"]) in now and ("like:p7", ["dee"]) in now


@pytest.mark.parametrize("n", range(8))
async def test_a_mute_wins_over_an_activity_of_its_own_time_whatever_its_id(redis: Redis, n: int) -> None:
    """A hiding item's id sorts after every event id's register token (a long id's is a digest,
    layouts.register_token): an activity at or after the mute's time is hidden all the same."""
    await apply(redis, like(f"like-event-{n:04}", "ann", "p1", "olga", 10))  # 0006: ~oEoh... > ~mute
    assert await relate(redis, "olga", "mutes", "ann", True, 5) == 1
    assert await shown(redis, "olga") == []
    _, unread, _ = await inbox_view(Inbox(redis, LIMITS), "olga")
    assert unread == 0


async def test_a_muted_post_notifies_no_more_and_its_items_leave(redis: Redis) -> None:
    await apply(
        redis,
        like("l-1", "ann", "p1", "olga", 1),
        like("l-2", "bob", "p1", "olga", 2),
        Comment(id="c-1", actor="cid", occurred_at=at(3), post="p1", owner="olga", comment="c1"),
        Mention(id="m-1", actor="dan", occurred_at=at(4), post="p1", users=["olga"], comment="c2"),
        like("l-3", "ann", "p2", "olga", 5),
    )
    assert await relate(redis, "olga", "muted-posts", "p1", True, 10) == 4
    assert await shown(redis, "olga") == [("like:p2", ["ann"])]
    await apply(redis, like("l-4", "eve", "p1", "olga", 11), like("l-5", "eve", "p2", "olga", 12))
    assert await shown(redis, "olga") == [("like:p2", ["eve", "ann"])]
    page = await PreferenceStore(redis).page("olga", "muted-posts", None, 10)
    assert page.members == [("p1", ms(10))]


STEPS = ("bob follows ann", "ann follows bob", "late follow", "block")


@pytest.mark.parametrize("order", list(permutations(STEPS)))
async def test_a_block_severs_the_follows_whatever_the_order(redis: Redis, order: tuple[str, ...]) -> None:
    """Block (ann blocks bob at 50) and follows both ways (one of them stamped after the block,
    as a skewed clock would) applied in every order end the same: no follow between them, and
    neither's posts in the other's feed, while cid's follow of ann is untouched."""
    await apply(
        redis,
        Follow(id="f-c", actor="cid", occurred_at=at(0), user="ann"),
        PostCreated(id="p-a", actor="ann", occurred_at=at(5), post="pa"),
        PostCreated(id="p-b", actor="bob", occurred_at=at(6), post="pb"),
    )
    steps: dict[str, Callable[[], Awaitable[object]]] = {
        "bob follows ann": lambda: apply(redis, Follow(id="f-1", actor="bob", occurred_at=at(1), user="ann")),
        "ann follows bob": lambda: apply(redis, Follow(id="f-2", actor="ann", occurred_at=at(2), user="bob")),
        "late follow": lambda: apply(redis, Follow(id="f-3", actor="bob", occurred_at=at(60), user="ann")),
        "block": lambda: relate(redis, "ann", "blocks", "bob", True, 50),
    }
    for step in order:
        await steps[step]()
    graph, feeds = FollowGraph(redis), HomeFeeds(redis, LIMITS)
    assert [m.user for m in (await graph.page("ann", "followers", None, 10)).members] == ["cid"]
    for user in ("ann", "bob"):
        assert (await graph.page(user, "following", None, 10)).members == []
        assert (await feeds.page(user, None, 10)).items == []
    assert await shown(redis, "ann") == [("follow:", ["cid"])]
    assert await shown(redis, "bob") == []
    assert [orjson.loads(i)["id"] for i in (await feeds.page("cid", None, 10)).items] == ["pa"]

    # after an unblock, only a follow made after it is written
    await relate(redis, "ann", "blocks", "bob", False, 70)
    await apply(redis, Follow(id="f-4", actor="bob", occurred_at=at(65), user="ann"))
    assert (await graph.page("bob", "following", None, 10)).members == []
    await apply(redis, Follow(id="f-5", actor="bob", occurred_at=at(80), user="ann"))
    assert [m.user for m in (await graph.page("bob", "following", None, 10)).members] == ["ann"]
    assert [m.user for m in (await graph.page("ann", "followers", None, 10)).members] == ["bob", "cid"]
    assert [orjson.loads(i)["id"] for i in (await feeds.page("bob", None, 10)).items] == []  # pa: before


@pytest.mark.parametrize("relation", ["mutes", "blocks", "muted-posts"])
async def test_a_mute_that_lands_between_the_fan_outs_reads_and_writes_still_hides(
    redis: Redis, monkeypatch: pytest.MonkeyPatch, relation: Relation
) -> None:
    """The fan-out read olga's preferences before she muted ann, and wrote ann's like after the
    mute's hiding pass looked at her inbox: it finds the mute came in between and hides again."""
    keep = PreferenceStore.keep

    async def keep_then_mute(self: PreferenceStore, *args: object, **kwargs: object) -> object:
        kept = await keep(self, *args, **kwargs)  # type: ignore[arg-type]
        assert (
            await relate(redis, "olga", relation, "p1" if relation == "muted-posts" else "ann", True, 10) == 0
        )
        return kept

    monkeypatch.setattr(PreferenceStore, "keep", keep_then_mute)
    await apply(redis, like("l-1", "ann", "p1", "olga", 5), like("l-2", "cid", "p2", "olga", 6))
    assert await shown(redis, "olga") == [("like:p2", ["cid"])]
    _, unread, _ = await inbox_view(Inbox(redis, LIMITS), "olga")
    assert unread == 1


async def test_a_deleted_post_takes_its_notifications_and_mentions_with_it_for_good(redis: Redis) -> None:
    events: list[Event] = [
        like("l-1", "ann", "p1", "olga", 1),
        Comment(id="c-1", actor="cid", occurred_at=at(2), post="p1", owner="olga", comment="c1", text="hi"),
        Mention(id="m-1", actor="olga", occurred_at=at(3), post="p1", users=["dee", "eve"]),
        like("l-2", "bob", "p2", "olga", 4),
    ]
    await apply(redis, *events)
    assert len(await shown(redis, "olga")) == 3 and len(await shown(redis, "dee")) == 1
    deleted = PostDeleted(id="d-1", actor="olga", occurred_at=at(5), post="p1", mentioned=["dee", "eve"])
    await apply(redis, deleted)
    assert await shown(redis, "olga") == [("like:p2", ["bob"])]
    assert await shown(redis, "dee") == [] and await shown(redis, "eve") == []
    _, unread, _ = await inbox_view(Inbox(redis, LIMITS), "olga")
    assert unread == 1
    # a replay (or a late redelivery) of the whole log brings none of them back
    await apply(redis, *events, deleted)
    await apply(redis, *events)
    assert await shown(redis, "olga") == [("like:p2", ["bob"])] and await shown(redis, "dee") == []
