"""The HTTP API's answers as types: what the OpenAPI document (notifier/openapi.py) describes and
tests/e2e/test_contract.py checks every live response against. Requests are typed where they are
decoded (events here in schemas/, the inbox and moderator bodies next to their routes)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .events import PostKind, Visibility


class Problem(msgspec.Struct):
    """RFC 9457 problem details; `error` is the machine-readable reason, `pointer` a JSON pointer
    into the request where it applies."""

    type: Annotated[str, msgspec.Meta(description="urn:notifier:problem:REASON")]
    title: str
    status: int
    detail: str
    error: Annotated[str, msgspec.Meta(description="the reason, as in the README's tables")]
    pointer: str | None = None


class EventVerdict(msgspec.Struct):
    """One event's fate, in request order."""

    status: Literal["accepted", "duplicate", "rejected"]
    id: str | None = None
    position: Annotated[str | None, msgspec.Meta(description="PARTITION/STREAM-ID in the log")] = None
    error: Annotated[
        str | None,
        msgspec.Meta(
            description="why it was rejected: invalid, malformed, forbidden, conflict, or too_late "
            "(occurred_at older than NOTIFIER_INGEST_MAX_LATENESS_S: past the views' horizon)"
        ),
    ] = None
    detail: str | None = None
    pointer: str | None = None


class IngestReply(msgspec.Struct):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventVerdict]


class IngestRefused(msgspec.Struct):
    """Every event refused: a problem carrying the per-event verdicts."""

    type: str
    title: str
    status: int
    detail: str
    error: str
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventVerdict]
    pointer: str | None = None


class Group(msgspec.Struct):
    """One aggregated notification: `post`, `comment`, `text` where they apply."""

    id: str
    verb: str
    actors: list[str]
    count: int
    first_at: int
    last_at: int
    read: bool
    post: (
        Annotated[str, msgspec.Meta(description="the post liked, commented on or mentioned in")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    comment: Annotated[str, msgspec.Meta(description="a comment's id")] | msgspec.UnsetType = msgspec.UNSET
    text: Annotated[str, msgspec.Meta(description="a comment's or mention's text")] | msgspec.UnsetType = (
        msgspec.UNSET
    )


class InboxPage(msgspec.Struct):
    groups: list[Group]
    unread: int
    unseen: Annotated[int, msgspec.Meta(description="groups active after `seen_at`: the badge")]
    seen_at: Annotated[int, msgspec.Meta(description="the seen mark (ms; 0: never marked)")]
    cursor: Annotated[str, msgspec.Meta(description="opaque: open the WebSocket with it")]
    next: Annotated[str | None, msgspec.Meta(description="opaque: `before` for the next page")]


class Unread(msgspec.Struct):
    unread: int
    unseen: int


class MarkSeen(msgspec.Struct, forbid_unknown_fields=True):
    """Mark the inbox seen (not read) up to `at` (ms: the `last_at` of the newest group the
    client showed), or up to the newest group when absent."""

    at: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Seen(msgspec.Struct):
    """The badge after marking seen, and the seen mark (it never moves back)."""

    unseen: int
    seen_at: int


class Marked(msgspec.Struct):
    marked: int
    unread: int


_NEXT = msgspec.Meta(description="opaque: `before` for the next page, null on the last")


class Member(msgspec.Struct):
    """A user in a follow list, mute list or block list (or a muted post), with when (ms) they
    were added."""

    id: str
    since: int


class MemberPage(msgspec.Struct):
    """Followers, following, mutes or blocks: newest first; `count` is the whole list's size."""

    users: list[Member]
    count: int
    next: Annotated[str | None, _NEXT]


class FollowCounts(msgspec.Struct):
    followers: int
    following: int


class Post(msgspec.Struct):
    """A live post as its post_created event made it; `at` is its time (ms)."""

    id: str
    author: str
    kind: PostKind
    text: str
    visibility: Visibility
    at: int


class PostPage(msgspec.Struct):
    """An author's live posts, newest first; `count` is how many they have."""

    posts: list[Post]
    count: int
    next: Annotated[str | None, _NEXT]


class FeedPage(msgspec.Struct):
    """The caller's home feed, newest first; a page may be shorter than `limit`: follow `next`."""

    items: list[Post]
    next: Annotated[str | None, _NEXT]


class MutedPostPage(msgspec.Struct):
    """The caller's muted posts (threads), newest mute first; `since`: when muted (ms)."""

    posts: list[Member]
    count: int
    next: Annotated[str | None, _NEXT]


class Changed(msgspec.Struct):
    """Whether a mute or block (or its undoing) changed anything (false when already so), and
    how many notifications it took out of the inbox (of both users for a block; 0 for an undo).
    Repeating a mute or block is safe and redoes the hiding."""

    changed: bool
    hidden: int


class Live(msgspec.Struct):
    live: bool


class Ready(msgspec.Struct):
    ready: bool
    reasons: list[str] | None = None  # with 503: what is not ready yet
