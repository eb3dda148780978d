"""Events for tests, with deterministic ids and times counted in seconds from one base instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from schemas.events import Comment, CommentDeleted, Follow, Like, Mention, Unfollow, Unlike

BASE: Final = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # mid-day: one aggregation window either side
DAY_S: Final = 86_400


def at(seconds: float) -> datetime:
    return BASE + timedelta(seconds=seconds)


def like(actor: str, post: str = "p1", owner: str = "olga", t: float = 0, eid: str = "") -> Like:
    return Like(id=eid or f"like-{actor}-{post}-{t}", actor=actor, occurred_at=at(t), post=post, owner=owner)


def unlike(actor: str, post: str = "p1", owner: str = "olga", t: float = 0, eid: str = "") -> Unlike:
    eid = eid or f"unlike-{actor}-{post}-{t}"
    return Unlike(id=eid, actor=actor, occurred_at=at(t), post=post, owner=owner)


def follow(actor: str, user: str = "olga", t: float = 0, eid: str = "") -> Follow:
    return Follow(id=eid or f"follow-{actor}-{user}-{t}", actor=actor, occurred_at=at(t), user=user)


def unfollow(actor: str, user: str = "olga", t: float = 0, eid: str = "") -> Unfollow:
    return Unfollow(id=eid or f"unfollow-{actor}-{user}-{t}", actor=actor, occurred_at=at(t), user=user)


def comment(
    actor: str, comment_id: str = "c1", post: str = "p1", owner: str = "olga", t: float = 0, text: str = "hi"
) -> Comment:
    return Comment(
        id=f"comment-{comment_id}",
        actor=actor,
        occurred_at=at(t),
        post=post,
        owner=owner,
        comment=comment_id,
        text=text,
    )


def comment_deleted(
    actor: str,
    comment_id: str = "c1",
    post: str = "p1",
    owner: str = "olga",
    t: float = 0,
    mentioned: tuple[str, ...] = (),
) -> CommentDeleted:
    return CommentDeleted(
        id=f"comment-deleted-{comment_id}",
        actor=actor,
        occurred_at=at(t),
        post=post,
        owner=owner,
        comment=comment_id,
        mentioned=list(mentioned),
    )


def mention(
    actor: str, users: tuple[str, ...], post: str = "p1", comment_id: str | None = None, t: float = 0
) -> Mention:
    source = comment_id or post
    return Mention(
        id=f"mention-{actor}-{source}-{t}",
        actor=actor,
        occurred_at=at(t),
        post=post,
        users=list(users),
        comment=comment_id,
        text="look",
    )
