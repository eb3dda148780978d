"""Byte layouts the inbox scripts (feeds/lua/) store and publish, defined once: the Python side
reads and writes them with these functions, and feeds/scripts.py injects LUA_CONSTANTS into the
scripts' source, so Lua and Python share every number and separator.

- A time (ms) is MS_BYTES big-endian bytes of t + MS_OFFSET: every date an event can carry,
  exact in a Lua number, and ordered as the bytes are.
- An item register (`keys.toggles` field per item): STATE (1 byte: a active, i inactive,
  x retracted for good), TIME, TOKEN (the event's `register_token`: what breaks a tie of
  times), and for an active like or follow `|` WINDOW.
- A change-log entry starts with its check as CHECK_BYTES big-endian bytes, CHECK_MIN to
  2 * CHECK_MIN - 1 (so its first byte is >= 128; an entry logged before checks starts with its
  op letter: check 0), then OP UNREAD ' ' REF. A log is trimmed back to its bound once it holds
  a LOG_SLACK-th more (`trim_past`).
- An inbox record (`keys.inbox`, newest first): TIME, then for a like or follow group its short
  id (the verb's first letter, then what follows `VERB:`), for a comment or a mention HEAD `|`
  ACTOR `|` POST `|` TEXT, HEAD the short id, or `p` for a mention in a post (whose group id,
  `mention:POST~ACTOR` (`mention_in_post`), the record holds).
- A published change: `EPOCH N CHECK[@MS[@TRACEPARENT]] [FEED_MARK]PAYLOAD` (the tag after the
  check: the event's acceptance time and trace context, for the gateway's push latency and
  tracing; FEED_MARK leads a home-feed change, which shares the inbox's log); or RESYNC_MESSAGE.
- An inbox script call (feeds/scripts.py): USER_KEYS keys per user (items, inbox, read marks,
  change log), item after item in an apply call; a home-feed push FEED_USER_KEYS (those, then
  the home feed, mutes, blocks and hide marks).
- The user's state (`keys.toggles` field `#`): last change number (STATE_SEQ_BYTES, below 2^40,
  so its first byte is 0), unread count (STATE_UNREAD_BYTES, signed), actors shown per group
  (1 byte), the read marks' summary (MARKS_NONE: no group has a read mark of its own, or
  MARKS_GROUPS: some may; then the read-all mark as a TIME, 0 for none), then the log's epoch.
  The summary is kept in step with the read marks hash (`keys.read_marks`) by every script
  writing it, so an item of a user who never marked one group read is applied without reading
  the hash. Written before without the summary (the byte after `shown` is the epoch's first,
  a printable character) or deleted with the views by a rebuild (the hash is kept): unknown,
  learned from the hash. Written before that as the text `EPOCH SEQ UNREAD SHOWN` (first byte
  never 0), still read.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Final, Literal

MS_OFFSET: Final = 2**48
MS_BYTES: Final = 7
REGISTER_WINDOW: Final = "|"
CHECK_MIN: Final = 2**23
CHECK_BYTES: Final = 3
PUBLISHED_SEPARATOR: Final = " "
TAG_SEPARATOR: Final = "@"
FEED_MARK: Final = "F"
# Published on a user's channel instead of a change: "re-read the change log from your cursor"
# (not in the change layout, so the gateway's hub resyncs the user's sessions). The fan-out's
# direct apply (feeds/direct.py) sends it to a user who subscribed while it logged changes it
# did not publish.
RESYNC_MESSAGE: Final = "resync"
# A user's changes one call logs past this many are not published one by one but as one
# RESYNC_MESSAGE (lua/feed_push.lua: a follow's back-fill logs up to NOTIFIER_FEEDS_MAX_HOME at
# once): the gateway replays them from the log a batch at a time, where hundreds of frames of
# one read would overflow a session's send queue (4504) however fast its client reads.
PUBLISHED_BURST: Final = 64
STATE_FIELD: Final = "#"
HORIZON_FIELD: Final = "<"  # the user's trimmed horizon (a time): feeds/horizon.py
# `FIRST LAST`: the numbers of the latest burst's changes (lua/feed_push.lua). The log keeps
# them whole until NOTIFIER_FEEDS_MAX_CHANGES changes came after them, however many they are,
# so that a session told of the burst (RESYNC_MESSAGE) finds it there to re-read (common.lua
# trim); the field goes once they are past.
BURST_FIELD: Final = ">"


def decode_burst(raw: bytes | str | None) -> tuple[int, int] | None:
    """BURST_FIELD's `FIRST LAST` (as lua/feed_push.lua writes it, common.lua trim reads it)."""
    if raw is None:
        return None
    first, last = (raw.decode() if isinstance(raw, bytes) else raw).split(" ")
    return int(first), int(last)


STATE_SEQ_BYTES: Final = 6
STATE_UNREAD_BYTES: Final = 4
MARKS_NONE: Final = 1
MARKS_GROUPS: Final = 2
# A change-log entry's op, the letter after its check (then what lua/replay.lua needs to render
# it again): the inbox's four, and the home feed's two, which share the log.
OP_UPSERT: Final = "u"
OP_REMOVE: Final = "d"
OP_READ: Final = "r"
OP_SEEN: Final = "s"
OP_FEED_PUSH: Final = "p"
OP_FEED_DROP: Final = "q"
USER_KEYS: Final = 4
FEED_USER_KEYS: Final = USER_KEYS + 4
LOG_SLACK: Final = 16
VERBS: Final = {"l": "like", "f": "follow", "c": "comment", "m": "mention"}

RegisterState = Literal["a", "i", "x"]


def encode_ms(at_ms: int) -> bytes:
    return (at_ms + MS_OFFSET).to_bytes(MS_BYTES, "big")


def decode_ms(raw: bytes) -> int:
    return int.from_bytes(raw[:MS_BYTES], "big") - MS_OFFSET


# The watermark of a user whose registers were never trimmed: below every time.
NO_HORIZON: Final = (0).to_bytes(MS_BYTES, "big")  # encode_ms(-MS_OFFSET)


# What an item register keeps of the event that set it (`register_token`): a digest of this
# many bytes, in base64url after TOKEN_MARK, for an id longer than that.
TOKEN_BYTES: Final = 6
TOKEN_MARK: Final = "{"  # above every id character (events.ID_PATTERN), below hiding ids (feeds/hiding.py)


def register_token(event_id: str) -> str:
    """What an item register keeps of the event that set it, to break a tie of times (last
    writer wins by (time, token)) and to know the event again: the id itself when it is no
    longer than a token, else TOKEN_MARK and a 48-bit digest of it. A register no longer
    carries the producer's id whole (up to 128 characters; a UUID's 36): 9 bytes at most."""
    if len(event_id) <= 1 + TOKEN_BYTES * 4 // 3:
        return event_id
    digest = hashlib.blake2b(event_id.encode(), digest_size=TOKEN_BYTES).digest()
    return TOKEN_MARK + base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Register:
    state: RegisterState
    at_ms: int
    token: str  # register_token of the event that set it (its id, in registers written before)
    window: str  # the group's window for an active like or follow ('' otherwise)

    def set_by(self, event_id: str) -> bool:
        """Whether event `event_id` set this register."""
        return self.token in (register_token(event_id), event_id)


def encode_register(register: Register) -> bytes:
    tail = f"{REGISTER_WINDOW}{register.window}" if register.window else ""
    return register.state.encode() + encode_ms(register.at_ms) + f"{register.token}{tail}".encode()


def decode_register(raw: bytes) -> Register:
    state = raw[:1].decode()
    if state not in ("a", "i", "x") or len(raw) < 1 + MS_BYTES:
        raise ValueError(f"not an item register: {raw!r}")
    token, _, window = raw[1 + MS_BYTES :].decode().partition(REGISTER_WINDOW)
    return Register(state, decode_ms(raw[1:]), token, window)  # type: ignore[arg-type]  # checked above


def encode_log_check(check: int) -> bytes:
    if not CHECK_MIN <= check < 2 * CHECK_MIN:
        raise ValueError(f"a change-log check is {CHECK_MIN} to {2 * CHECK_MIN - 1}: {check}")
    return check.to_bytes(CHECK_BYTES, "big")


def decode_log_check(entry: bytes) -> tuple[int, bytes]:
    """The check of a change-log entry and the rest of it (check 0: logged before checks)."""
    if entry and entry[0] >= 128:
        return int.from_bytes(entry[:CHECK_BYTES], "big"), entry[CHECK_BYTES:]
    return 0, entry


def user_epoch(candidate: str, log_key: str) -> str:
    """The epoch a user's change log starts with: the call's random candidate (12 hex digits,
    feeds/scripts.py new_epoch) made the user's own, its last 6 digits plus a hash of the log's
    key modulo 2^24 (lua/common.lua user_epoch, plain Lua for the in-process fake Redis, which
    has no redis.sha1hex). Users whose logs one call started get distinct epochs, so a cursor of
    one user's log is `refetch` on another's, never a silent resume; the first 6 digits, which
    the call's check is drawn from (check_of_epoch), stay."""
    h = 0
    for byte in log_key.encode():
        h = (h * 31 + byte) % 2**24
    return candidate[:6] + format((int(candidate[6:12], 16) + h) % 2**24, "06x")


def check_of_epoch(epoch: str) -> int:
    """The check of the changes one script call (or one direct-apply transaction) logs, drawn
    from its random epoch candidate (feeds/scripts.py new_epoch)."""
    return CHECK_MIN + int(epoch[:6], 16) % CHECK_MIN


def encode_log_entry(check: int, op: str, unread: int, ref: str) -> bytes:
    return encode_log_check(check) + f"{op}{unread} {ref}".encode()


def trim_past(max_changes: int) -> int:
    """The length past which a change log is trimmed back to `max_changes`."""
    return max_changes + max_changes // LOG_SLACK


# Between the post and the actor of a mention-in-post's group id: a character no id holds
# (events.ID_PATTERN), so ids with ':' never make two groups one (`mention:a:b:c` was both b:c's
# mention in post a and c's in post a:b, and a comment a:b:c's mentions).
MENTION_IN_POST: Final = "~"


def mention_in_post(post: str, actor: str) -> str:
    """The group id of `actor`'s mention of the recipient in `post`."""
    return f"mention:{post}{MENTION_IN_POST}{actor}"


def short_group(gid: str) -> str:
    return gid[0] + gid[gid.index(":") + 1 :]


def long_group(short: str) -> str:
    return f"{VERBS[short[0]]}:{short[1:]}"


def encode_group_record(at_ms: int, gid: str) -> bytes:
    """The record of a like or follow group."""
    return encode_ms(at_ms) + short_group(gid).encode()


def encode_single_record(
    at_ms: int, gid: str, actor: str, post: str, text: str, *, in_comment: bool
) -> bytes:
    """The record of a comment, or of a mention (`in_comment`: in a comment, else in a post)."""
    head = short_group(gid) if in_comment else "p"
    return encode_ms(at_ms) + f"{head}|{actor}|{post}|{text}".encode()


def record_group(record: bytes) -> tuple[int, str]:
    """A record's time and group id."""
    tail = record[MS_BYTES:]
    bar = tail.find(b"|")  # after the time, whose bytes may hold a '|'
    if bar < 0:
        return decode_ms(record), long_group(tail.decode())
    head = tail[:bar].decode()
    if head != "p":
        return decode_ms(record), long_group(head)
    actor, post, _ = tail[bar + 1 :].decode().split("|", 2)
    return decode_ms(record), mention_in_post(post, actor)


def decode_floor(mark: bytes | None) -> tuple[int, str] | None:
    """The cap's floor in a user's HORIZON_FIELD, after the horizon's time: the time and group
    id of the newest group the inbox cap dropped (lua/common.lua below_floor), or None."""
    if mark is None or len(mark) <= MS_BYTES:
        return None
    return decode_ms(mark[MS_BYTES:]), long_group(mark[2 * MS_BYTES :].decode())


def below_floor(floor: tuple[int, str] | None, at_ms: int, gid: str) -> bool:
    """Whether an item of group `gid` at `at_ms` is at or below the floor: it enters the inbox
    no more (lua/common.lua below_floor; `gid` '': an item leaving its group, below only
    strictly before the floor's time)."""
    if floor is None:
        return False
    if at_ms != floor[0]:
        return at_ms < floor[0]
    return gid != "" and gid <= floor[1]


def is_group_record(record: bytes) -> bool:
    """A like or follow group's (many actors), not a comment's or a mention's."""
    return b"|" not in record[MS_BYTES:]


@dataclass(frozen=True, slots=True)
class Published:
    epoch: str
    number: int
    check: int
    payload: str
    accepted_ms: str = ""  # '' when untagged
    traceparent: str = ""  # '' when none
    feed: bool = False  # a home-feed change (its payload is led by FEED_MARK on the wire)


def push_tag(accepted_ms: int, traceparent: str = "") -> str:
    """What follows a published change's check: `@MS`, and `@TRACEPARENT` when tracing is on."""
    tag = f"{TAG_SEPARATOR}{accepted_ms}"
    return f"{tag}{TAG_SEPARATOR}{traceparent}" if traceparent else tag


def format_published(change: Published) -> str:
    tag = push_tag(int(change.accepted_ms), change.traceparent) if change.accepted_ms else ""
    payload = f"{FEED_MARK}{change.payload}" if change.feed else change.payload
    fields = (change.epoch, str(change.number), f"{change.check}{tag}", payload)
    return PUBLISHED_SEPARATOR.join(fields)


def parse_published(message: str) -> Published:
    epoch, number, tagged, payload = message.split(PUBLISHED_SEPARATOR, 3)
    check, _, tag = tagged.partition(TAG_SEPARATOR)
    accepted_ms, _, traceparent = tag.partition(TAG_SEPARATOR)
    feed = payload.startswith(FEED_MARK)
    if feed:
        payload = payload[len(FEED_MARK) :]
    return Published(epoch, int(number), int(check), payload, accepted_ms, traceparent, feed)


@dataclass(frozen=True, slots=True)
class UserState:
    epoch: str | None  # None: no change logged yet
    last_change: int
    unread: int
    shown: int = 3
    read_all_ms: int | None = None  # the read-all mark (0: none); None: the summary is unknown
    group_marks: bool = True  # whether some group may have a read mark of its own


def encode_state(state: UserState) -> bytes:
    if state.epoch is None or not 0 <= state.last_change < 2**40:
        raise ValueError(f"not a state to save: {state}")
    marks = b""
    if state.read_all_ms is not None:
        marks = bytes([MARKS_GROUPS if state.group_marks else MARKS_NONE]) + encode_ms(state.read_all_ms)
    return (
        state.last_change.to_bytes(STATE_SEQ_BYTES, "big")
        + state.unread.to_bytes(STATE_UNREAD_BYTES, "big", signed=True)
        + bytes([state.shown])
        + marks
        + state.epoch.encode()
    )


def decode_state(raw: bytes | None) -> UserState:
    if not raw:
        return UserState(None, 0, 0)
    if raw[0] != 0:  # the text of before
        epoch, last, unread, shown = raw.decode().split(" ")
        return UserState(epoch, int(last), int(unread), int(shown))
    at = STATE_SEQ_BYTES + STATE_UNREAD_BYTES
    seq = int.from_bytes(raw[:STATE_SEQ_BYTES], "big")
    count = int.from_bytes(raw[STATE_SEQ_BYTES:at], "big", signed=True)
    marks = raw[at + 1 : at + 2]
    if marks not in (bytes([MARKS_NONE]), bytes([MARKS_GROUPS])):  # written before the summary
        return UserState(raw[at + 1 :].decode(), seq, count, raw[at])
    epoch = raw[at + 2 + MS_BYTES :].decode()
    return UserState(epoch, seq, count, raw[at], decode_ms(raw[at + 2 :]), marks[0] == MARKS_GROUPS)


# An accepted event's record in its partition's idempotency window (keys.idempotency): its
# event-log entry id, then its fingerprint (blake2b of its contract JSON), FINGERPRINT_BYTES raw.
FINGERPRINT_BYTES: Final = 12


def encode_accepted(entry_id: str, fingerprint: bytes) -> bytes:
    if len(fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"a fingerprint is {FINGERPRINT_BYTES} bytes: {fingerprint!r}")
    return entry_id.encode() + fingerprint


def decode_accepted(raw: bytes) -> tuple[str, bytes]:
    """The entry id and the fingerprint of an accepted event's record."""
    if len(raw) <= FINGERPRINT_BYTES:
        raise ValueError(f"not an accepted event's record: {raw!r}")
    return raw[:-FINGERPRINT_BYTES].decode(), raw[-FINGERPRINT_BYTES:]


def accepted_ms(raw: bytes) -> int:
    """When the event of a record was appended: its entry id's time."""
    return int(decode_accepted(raw)[0].partition("-")[0])


# An actor's content index (keys.mod_content field): entries separated by CONTENT_SEPARATOR,
# each a flag, CONTENT_DELIVERED (let through: kept for the event log's retention, what a ban
# recalls and a report finds; counted by the velocity rule), CONTENT_COUNTED (screened, not
# delivered: kept for the velocity rule, notifier/moderation/content.py COUNTED_KEEP_MS) or
# CONTENT_AGAIN (delivered, appended again long after its acceptance: never counted), then the
# event's position PARTITION/ENTRY (its time: the entry id's), and for a delivered mention in a
# post ' ' POST. Past CONTENT_SPILL entries the actor's index moves to
# a sorted set of its own (keys.mod_content_spill), velocity members scored VELOCITY_SCORES below
# their time.
CONTENT_SEPARATOR: Final = ","  # neither a position nor an id (events.ID_PATTERN) holds one
CONTENT_POST: Final = " "  # between a position and its post, in a field or a sorted set's member
CONTENT_DELIVERED: Final = "+"
CONTENT_COUNTED: Final = "-"
CONTENT_AGAIN: Final = "*"
CONTENT_SPILL: Final = 16
VELOCITY_SCORES: Final = 2**48  # above any time in ms; the offset scores stay exact in a double


@dataclass(frozen=True, slots=True)
class ContentEntry:
    delivered: bool
    position: str  # PARTITION/ENTRY
    post: str  # a delivered mention in a post's post, else ''


def decode_content(raw: bytes | None) -> list[ContentEntry]:
    out = []
    for entry in (raw or b"").decode().split(CONTENT_SEPARATOR):
        if entry:
            position, _, post = entry[1:].partition(CONTENT_POST)
            out.append(ContentEntry(entry[0] != CONTENT_COUNTED, position, post))
    return out


def lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Injected as Lua locals ahead of lua/common.lua (feeds/scripts.py).
LUA_CONSTANTS: Final[dict[str, str]] = {
    "MS_OFFSET": str(MS_OFFSET),
    "MS_BYTES": str(MS_BYTES),
    "REGISTER_WINDOW": lua_string(REGISTER_WINDOW),
    "CHECK_MIN": str(CHECK_MIN),
    "CHECK_BYTES": str(CHECK_BYTES),
    "PUBLISHED_SEPARATOR": lua_string(PUBLISHED_SEPARATOR),
    "FEED_MARK": lua_string(FEED_MARK),
    "STATE_FIELD": lua_string(STATE_FIELD),
    "HORIZON_FIELD": lua_string(HORIZON_FIELD),
    "BURST_FIELD": lua_string(BURST_FIELD),
    "STATE_FORMAT": lua_string(f">I{STATE_SEQ_BYTES}i{STATE_UNREAD_BYTES}B"),
    "STATE_MARKS_FORMAT": lua_string(f">I{STATE_SEQ_BYTES}i{STATE_UNREAD_BYTES}BBI{MS_BYTES}"),
    "MARKS_NONE": str(MARKS_NONE),
    "MARKS_GROUPS": str(MARKS_GROUPS),
    "STATE_SEQ_BYTES": str(STATE_SEQ_BYTES),
    "STATE_UNREAD_BYTES": str(STATE_UNREAD_BYTES),
    "OP_UPSERT": lua_string(OP_UPSERT),
    "OP_REMOVE": lua_string(OP_REMOVE),
    "OP_READ": lua_string(OP_READ),
    "OP_SEEN": lua_string(OP_SEEN),
    "OP_FEED_PUSH": lua_string(OP_FEED_PUSH),
    "OP_FEED_DROP": lua_string(OP_FEED_DROP),
    "USER_KEYS": str(USER_KEYS),
    "FEED_USER_KEYS": str(FEED_USER_KEYS),
    "LOG_SLACK": str(LOG_SLACK),
    "MENTION_IN_POST": lua_string(MENTION_IN_POST),
    "RESYNC_MESSAGE": lua_string(RESYNC_MESSAGE),
    "PUBLISHED_BURST": str(PUBLISHED_BURST),
}


def lua_constants() -> str:
    names = ", ".join(LUA_CONSTANTS)
    return f"local {names} = {', '.join(LUA_CONSTANTS.values())}\n"
