"""Every Redis key, channel, consumer group and job id. Nothing else formats one.

All of one user's keys and its channel share the hash tag `{u:ID}`, and a partition's stream,
idempotency window and dead letters share `{p}`, so every script stays in one Redis Cluster slot.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

from .partition_tags import PARTITION_TAGS

FANOUT_GROUP: Final = "fanout"


def _user(user_id: str) -> str:
    return "{u:" + user_id + "}"


# partition-scoped -------------------------------------------------------------------------
# A partition's tag is picked by its cluster slot (partition_tags.py), not its index.


def _partition(partition: int) -> str:
    return "{" + PARTITION_TAGS[partition] + "}"


def events(partition: int) -> str:
    """Stream: the event log of one partition (the source of truth)."""
    return f"events:{_partition(partition)}"


# An event's record in its partition's idempotency window is in one of this many hashes, by
# its id (a layout: changing it loses the window's records for ids that move).
IDEMPOTENCY_BUCKETS: Final = 64


def idempotency(partition: int, event_id: str) -> str:
    """Hash: event id -> its record (schemas/layouts.py encode_accepted) for each event the
    partition accepted within `NOTIFIER_INGEST_DEDUPE_TTL_S`, in one of IDEMPOTENCY_BUCKETS by
    the id's crc32: a field in a shared hash instead of a key with a TTL per event (~85 B
    instead of ~185 of Redis an event). The janitor deletes the records past the window."""
    return idempotency_bucket(partition, zlib.crc32(event_id.encode()) % IDEMPOTENCY_BUCKETS)


def idempotency_bucket(partition: int, bucket: int) -> str:
    return f"idem:{_partition(partition)}:{bucket}"


def idempotency_lease(partition: int) -> str:
    """String with TTL: the lease of the janitor sweeping the partition's idempotency window
    this round (notifier/fanout/janitor.py sweep_window)."""
    return f"idem-lease:{_partition(partition)}"


def idempotency_sweep(partition: int) -> str:
    """Hash: bucket -> `CURSOR SHARE`, where the scan of each of the partition's idempotency
    buckets goes on."""
    return f"idem-sweep:{_partition(partition)}"


def dedupe(partition: int, event_id: str) -> str:
    """String with TTL: `stream id|fingerprint` of an event accepted by a version before the
    idempotency window's hashes (2026-12-07). Read, never written: still a duplicate for a day
    after the upgrade. Delete once no deployment upgrades from before it."""
    return f"dedupe:{_partition(partition)}:{event_id}"


def dead_letters(partition: int) -> str:
    """Stream: entries the fan-out gave up on, with error and delivery count."""
    return f"dlq:{_partition(partition)}"


def dropped_letters(partition: int) -> str:
    """Stream: dead letters an operator dropped, with the reason given."""
    return f"dlq-dropped:{_partition(partition)}"


def fanout_done(partition: int) -> str:
    """String: how many of the partition's entries the fan-out accounted for (acknowledged,
    dropped from the group while pending, or older than the group): what tells entries deleted
    from the log unread (notifier/fanout/deadletter.py)."""
    return f"fanout-done:{_partition(partition)}"


def fanout_counting(partition: int) -> str:
    """Set: the fan-out consumers that count what they acknowledge in `fanout_done` (workers of
    a version before that count do not: while one is active, no loss is told)."""
    return f"fanout-counting:{_partition(partition)}"


def fanout_gap(partition: int) -> str:
    """String: how many entries deleted from the partition's log unread were reported."""
    return f"fanout-gap:{_partition(partition)}"


def fanout_errors(partition: int) -> str:
    """Hash: entry id -> last error while applying it (cleared on ack or dead-lettering)."""
    return f"fanout-errors:{_partition(partition)}"


# ingest-wide ------------------------------------------------------------------------------


def ingest_watch() -> str:
    """Hash: api process -> `RUN_ID LAST_SEEN_MS`, the Redis run it last saw and when: a field
    left on an earlier run names an api that did not survive a Redis restart to append its
    recent events again (notifier/api/recovery.py)."""
    return "ingest-watch"


def ingest_recovery() -> str:
    """Hash of counters: `restarts` the api processes saw, events `reappended` after one (lost
    by Redis, appended again), `unrecovered` windows reported as possibly lost."""
    return "ingest-recovery"


# user-scoped ------------------------------------------------------------------------------


def toggles(user_id: str) -> str:
    """Hash: item -> last-writer-wins register (state, time, event id, and for likes and follows
    the group) of what reached the user; under `#`, the inbox's state: the change log's epoch
    and last change number, the unread count; under `<`, the time up to which registers were
    trimmed (feeds/horizon.py)."""
    return f"ni:{_user(user_id)}"


TOGGLES_PATTERN: Final = "ni:{u:*"  # every user's `toggles` (SCAN MATCH)


def user_of_toggles(key: bytes | str) -> str:
    """The user whose `toggles` key this is."""
    text = key.decode() if isinstance(key, bytes) else key
    return text[len("ni:{u:") : -1]


def inbox(user_id: str) -> str:
    """List: one record per notification group (time, id, and for a comment or a mention its
    actor, post and text), newest first."""
    return f"nb:{_user(user_id)}"


def group_actors_prefix(user_id: str) -> str:
    """Prefix of `group_actors`; the inbox scripts append group ids read from the views."""
    return f"na:{_user(user_id)}:"


def group_actors(user_id: str, group_id: str) -> str:
    """Sorted set: the active actors of a like or follow group by the time of their action."""
    return group_actors_prefix(user_id) + group_id


def read_marks(user_id: str) -> str:
    """Hash: group id -> the group's last time when the user read it; `*` -> the read-all mark.

    User state, not derived from events: a rebuild of the views keeps it."""
    return f"nr:{_user(user_id)}"


def changelog(user_id: str) -> str:
    """Capped list: every change to the user's inbox, in order (the cursor for push and resume)."""
    return f"nc:{_user(user_id)}"


def followers(user_id: str) -> str:
    """Sorted set: who follows the user, by the time of their follow (feeds/lua/graph_follow.lua,
    from `follower_registers`). Replaced the set `followers:`: a `notifier replay --fresh` after
    upgrading rebuilds it from the log."""
    return f"fo:{_user(user_id)}"


def follower_registers(user_id: str) -> str:
    """Hash: follower -> last-writer-wins register "STATE TIME_MS EVENT_ID" of their follow of
    the user (feeds/lua/graph_follow.lua; the inbox's follow item kept it before, so a follow
    whose notification was dropped by a preference was missing from `followers`)."""
    return f"fe:{_user(user_id)}"


def following_registers(user_id: str) -> str:
    """Hash: followed user -> last-writer-wins register "STATE TIME_MS EVENT_ID" of the user's
    follow of them (feeds/lua/graph_follow.lua)."""
    return f"fr:{_user(user_id)}"


def following(user_id: str) -> str:
    """Sorted set: whom the user follows, by the time of their follow."""
    return f"fg:{_user(user_id)}"


def post_records(user_id: str) -> str:
    """Hash: post -> the author's register of it: "a TIME_MS EVENT_ID" + newline + the post's
    JSON while live, "x TIME_MS EVENT_ID" once deleted (for good)."""
    return f"tp:{_user(user_id)}"


def timeline(user_id: str) -> str:
    """Sorted set: the author's live posts by time, the newest `max_posts` kept."""
    return f"tl:{_user(user_id)}"


def post_tombstones(user_id: str) -> str:
    """Sorted set: the author's deleted posts by the acceptance time (ms) of their deletion, so
    their tombstones in `post_records` are forgotten once the event log no longer holds it."""
    return f"tx:{_user(user_id)}"


def home(user_id: str) -> str:
    """Sorted set: the user's home feed as pushed at write time, `AUTHOR|POST` by post time, the
    newest `max_home` kept (feeds/home.py; what is shown is filtered and merged at read)."""
    return f"hf:{_user(user_id)}"


def feed_pushes(user_id: str) -> str:
    """Hash: the author's write-time fan-outs in progress, `OP` + post -> the followers cursor
    (feeds/ranked.py) a resumed push continues after; a finished one is deleted (feeds/home.py)."""
    return f"fp:{_user(user_id)}"


PULLED_SHARDS: Final = 16


def pulled_authors(author: str) -> str:
    """Set, one of PULLED_SHARDS by the author's CRC32 (each its own cluster slot, tagged like a
    partition): the authors who published a post while at or above the celebrity threshold;
    their posts are merged into their followers' home feeds at read time instead of pushed."""
    return f"feed:pulled:{_partition(zlib.crc32(author.encode()) % PULLED_SHARDS)}"


def preferences(user_id: str) -> str:
    """String: the user's preferences as JSON (schemas/preferences.py). User state: a rebuild keeps it."""
    return f"pref:{_user(user_id)}"


def mutes(user_id: str) -> str:
    """Sorted set: actors the user muted, by the time of the mute. User state."""
    return f"mute:{_user(user_id)}"


def blocks(user_id: str) -> str:
    """Sorted set: users the user blocked, by the time of the block. User state."""
    return f"block:{_user(user_id)}"


def muted_posts(user_id: str) -> str:
    """Sorted set: posts (threads) the user muted, by the time of the mute. User state."""
    return f"mutep:{_user(user_id)}"


def relations_changed() -> str:
    """String: a counter the API increments after each mute, muted post or block it adds. The
    fan-out reads it before a batch's preference reads and after its writes: a change between
    means a mute may have come after those reads and before the writes (its hiding pass before
    them), so the batch's items are checked again (notifier/fanout/consumer.py)."""
    return "relations-changed"


def hide_marks(user_id: str) -> str:
    """Hash: `m:ACTOR` / `b:USER` / `p:POST` -> the ms of the last mute or unmute of the actor,
    block or unblock between the user and USER (either way), mute or unmute of the post: what
    happened at or before it stays hidden after an undo; `o:TYPE` -> `START-END` (ms; END empty
    while off), the type's off period: what happened in it stays hidden. User state."""
    return f"hide:{_user(user_id)}"


def user_channel(user_id: str) -> str:
    """Pub/sub channel carrying the user's change-log entries as they are appended."""
    return f"push:{_user(user_id)}"


def around_user(name: Callable[[str], str]) -> tuple[str, str]:
    """What comes before and after the user's hash tag in the names `name` makes (one of this
    module's user-scoped functions): the apply script derives a user's actors prefix and channel
    from their `toggles` key (feeds/scripts.py injects these)."""
    before, _, after = name("\0").partition(_user("\0"))
    return before, after


_CHANNEL_HEAD, _CHANNEL_TAIL = (len(part) for part in user_channel("\0").split("\0"))


def user_of_channel(channel: str) -> str:
    """Inverse of `user_channel`."""
    return channel[_CHANNEL_HEAD : len(channel) - _CHANNEL_TAIL]


def gateway_control() -> str:
    """Pub/sub channel every gateway listens on (keeps its subscription alive, carries broadcasts)."""
    return "gateway:control"


# Glob patterns of the keys derived from the event log (a rebuild deletes and replays them).
# Read marks are user state and are kept.
DERIVED_PATTERNS: Final = (
    "ni:{u:*",
    "nb:{u:*",
    "na:{u:*",
    "nc:{u:*",
    "fo:{u:*",
    "fe:{u:*",
    "fr:{u:*",
    "fg:{u:*",
    "tp:{u:*",
    "tl:{u:*",
    "tx:{u:*",
    "hf:{u:*",
    "fp:{u:*",
    "feed:pulled*",  # the shards, and the one global set before them
    # the families of the layout before the compact one: nothing reads them any more
    "followers:{u:*",
    "nt:{u:*",
    "nf:{u:*",
    "ng:{u:*",
    "nu:{u:*",
    "nlog:{u:*",
    "nm:{u:*",
)


# moderation ---------------------------------------------------------------------------------
# The review queue, decisions, bans and the audit trail share the tag `{mod}`: one slot, so a
# decision and its audit record commit in one MULTI. Rate counters are tagged by their owner.

_MOD = "{mod}"


def mod_item(item_id: str) -> str:
    """Hash: one review item (the event, verdicts, context, state, claim, decision, version)."""
    return f"mod:{_MOD}:{item_id}"


def mod_index(name: str) -> str:
    """Sorted set: item ids by arrival sequence; `name` is all | open | approved | rejected, or
    held (open items the policy held), or `urgent`: the open items by urgency
    (notifier/moderation/urgency.py), or `claimed`: items by the end of their claim."""
    return f"modq:{_MOD}:{name}"


def mod_sequence() -> str:
    """Counter: the arrival sequence of review items (their listing order and paging cursor)."""
    return f"modseq:{_MOD}"


def mod_actor(actor: str) -> str:
    """Sorted set: an actor's review items by sequence (their flag history, and what a ban rejects)."""
    return f"modh:{_MOD}:{actor}"


def mod_bans() -> str:
    """Hash: banned actor -> JSON {at_ms, by, reason}; their events accepted after `at_ms` are dropped."""
    return f"modban:{_MOD}"


def mod_ban_windows() -> str:
    """Hash: actor -> JSON [[from_ms, to_ms], ...], the windows of their lifted or replaced bans
    and suspensions (newest last): an event accepted in one stays dropped, in a replay too."""
    return f"modbanpast:{_MOD}"


def mod_effects() -> str:
    """Set: `deliver|ID` / `recall|ID` side effects decided but not yet done (the jobs' outbox)."""
    return f"modfx:{_MOD}"


def mod_changes() -> str:
    """Pub/sub channel: every change to the review queue and bans, pushed to open consoles."""
    return f"modlive:{_MOD}"


def audit() -> str:
    """Stream: the append-only, hash-chained audit trail of moderation decisions and bans."""
    return f"audit:{_MOD}"


def audit_head() -> str:
    """String: the hash of the audit trail's last record (the chain's anchor)."""
    return f"audit-head:{_MOD}"


def mod_reports(item_id: str) -> str:
    """Hash: reporter -> JSON {reason, note, at_ms}: who reported a review item (one each)."""
    return f"modrep:{_MOD}:{item_id}"


def mod_reported_by(user: str) -> str:
    """Sorted set: the review items a user reported, by report time (what they see the outcome of)."""
    return f"modmine:{_MOD}:{user}"


def mod_report_rate(user: str, window: int) -> str:
    """Counter with TTL: a user's reports in one rate window (window = time // window length)."""
    return f"modrl:{_MOD}:{user}:{window}"


def mod_enforcement(actor: str) -> str:
    """List: the actor's bans, suspensions and unbans as JSON records, newest first (capped)."""
    return f"modenf:{_MOD}:{actor}"


def mod_dropped(actor: str) -> str:
    """Sorted set: event ids of a banned actor's events dropped in the fan-out, by acceptance time."""
    return f"moddrop:{_MOD}:{actor}"


def mod_dropped_counts() -> str:
    """Hash: actor -> how many of their events were dropped because they were banned."""
    return f"moddropn:{_MOD}"


# Actors' content indexes share this many hashes (by the actor's crc32): a field per actor
# instead of a key with a TTL (a layout: changing it loses every index for a retention).
CONTENT_BUCKETS: Final = 1024


def _content_tag(bucket: int) -> str:
    return f"{{c:{bucket}}}"


def _content_bucket_of(actor: str) -> int:
    return zlib.crc32(actor.encode()) % CONTENT_BUCKETS


def mod_content(actor: str) -> str:
    """Hash: actor -> their screened comments and mentions (schemas/layouts.py CONTENT_*): the
    delivered ones for the event log's retention (what ban-and-remove recalls and reports find),
    the others for the velocity rule's minute (notifier/moderation/content.py). One of
    CONTENT_BUCKETS; an actor with more than CONTENT_SPILL entries has `mod_content_spill`."""
    return content_bucket(_content_bucket_of(actor))


def content_bucket(bucket: int) -> str:
    return f"modc:{_content_tag(bucket)}"


def mod_content_spill(actor: str) -> str:
    """Sorted set with TTL, in `mod_content(actor)`'s slot: the index of an actor with more
    entries than a bucket's field keeps: positions (`PARTITION/ENTRY`, and ` POST` for a mention
    in a post) scored by time, and the velocity minute's `-PARTITION/ENTRY` below them (scored
    by time - 2^48)."""
    return f"modc:{_content_tag(_content_bucket_of(actor))}:{actor}"


def mod_content_before(actor: str) -> str:
    """Sorted set with TTL: an actor's index as versions before 2026-12-07 kept it (positions by
    acceptance time, the velocity minute's event ids below them). Read, never written, until it
    expires (the log's retention after the upgrade)."""
    return f"modc:{{a:{actor}}}"


def mod_ref(ref: str) -> str:
    """Hash with TTL: event id -> `PARTITION/ENTRY` of the events behind one reportable thing
    (`comment:ID`, or `post:ID:ACTOR` for a mention in a post)."""
    return f"modref:{{r:{ref}}}"


def mod_duplicates(text_hash: str) -> str:
    """Sorted set with TTL: the targets one normalized text was sent to, by acceptance time."""
    return f"moddup:{{t:{text_hash}}}"


# jobs (arq) ---------------------------------------------------------------------------------

JOBS_QUEUE: Final = "arq:queue"  # arq's own default queue name; arq formats its keys itself


def recall_job(item_id: str) -> str:
    """arq job id of the recall of a rejected item (one in flight per item)."""
    return f"recall:{item_id}"


def deliver_job(item_id: str) -> str:
    """arq job id of the delivery of an approved held item (one in flight per item)."""
    return f"deliver:{item_id}"
