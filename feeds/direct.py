"""The inbox apply computed here and sent as plain commands, for the users nobody listens to.

lua/apply.lua costs Redis ~110,000 instructions an item, two thirds of them Lua around its
commands. Applied from here the same items cost Redis ~34,000 (`python -m loadtest.applycost
--callgrind [--direct]`), but ~0.74x its CPU time per event and twice the worker's in the
pinned fan-out benchmark (README "The direct apply"), so it is opt-in
(NOTIFIER_FANOUT_DIRECT_APPLY), on one Redis only. It applies what needs no rendering: the items
of users without a live client (most users, most of the time), whose changes are logged but not
pushed.

Up to WATCH_USERS users are two round trips on one connection:
1. WATCH each user's items key (every inbox script that writes their inbox, change log or read
   marks writes their state there too; WATCH costs Redis 7.0 a scan of the keys the connection
   already watches, so one key a user), then read the items' registers, the user's state and
   horizon, and, unless the worker remembers them (_Known: as it last wrote them, still so
   while the state and horizon are), their whole inbox, their change log's length and whether
   they have read marks; and who listens (PUBSUB NUMSUB). The inbox gives what lua/apply.lua
   reads of it and of the groups' actor sets (a like or follow group's record carries its
   newest actor's time).
2. MULTI, the writes lua/apply.lua would make, PUBSUB NUMSUB again, EXEC. A watched key written
   by anyone in between (the API's read marks, another worker) aborts the transaction: then the
   script applies those users' items, as it would have (registers make that safe). This
   worker's batches of other partitions, applied at the same time, take turns on a user instead.

A user whose items need more than this mirrors (someone listens: the change must be rendered
and published; an item updates a register already there; read marks of single groups; a state
written before the read marks' summary; a state another writer changed since the worker
remembered it; an inbox at its cap, which drops a group with its registers and raises the
floor, or past it) is left to the script, all of their items, before anything of theirs is sent.
A client subscribing between the two round trips is told to re-read the log
(layouts.RESYNC_MESSAGE): the change was logged but not published.

The differential test (tests/integration/feeds/test_differential.py) applies random histories
this way and by the frozen oracle of the script; they end in the same views.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas import keys, layouts

from .horizon import REFUSED
from .items import ItemOp
from .limits import FeedLimits
from .scripts import Command, connection, new_epoch

# A user seen with a live client is sent straight to the script for this long (s): their first
# read round trip would be wasted. Only a guess: who listens is asked again in each round trip.
LISTENED_FOR_S = 5.0
_LISTENED_MAX = 100_000  # users remembered at most; forgotten all at once past it
# Users whose keys the worker remembers as it last wrote them (their inbox, up to max_groups
# records, a few KB): the next batch for one of them reads only their registers and state.
KNOWN_USERS = 10_000
# Users per transaction (each on a connection of its own, at once): Redis 7.0's WATCH looks for
# each key among those the connection already watches, so a WATCH of n keys costs n^2 / 2
# comparisons (a batch's few hundred users in one WATCH were a visible share of Redis's time).
WATCH_USERS = 64


class _Script(Exception):
    """This user's items need lua/apply.lua."""


def _groups(records: Sequence[bytes]) -> dict[bytes, int]:
    """The like and follow groups of an inbox: their record's tail (short id) -> its time, which
    is their newest actor's (a group's actor set exists exactly while its record is there)."""
    return {r[layouts.MS_BYTES :]: layouts.decode_ms(r) for r in records if layouts.is_group_record(r)}


def _newer(t1: int, g1: str, t2: int, g2: str) -> bool:
    return t1 > t2 or (t1 == t2 and g1 > g2)


@dataclass(frozen=True, slots=True)
class _Known:
    """What a user's keys held after this worker's last commit to them: still so while their
    state and horizon fields are (every script that writes their inbox, log or read marks
    writes the state; a trim writes the horizon)."""

    state: bytes | None  # the `#` field
    horizon: bytes | None  # the `<` field
    records: list[bytes]  # the inbox, newest first
    groups: dict[bytes, int]  # its like and follow groups: their records' tail -> time
    log_len: int
    has_marks: bool


@dataclass(slots=True)
class _User:
    """One user's items of the batch, what was known or read of them, and what to write."""

    user: str
    ops: list[int]
    items: list[str]  # distinct, in the HMGET's order
    known: _Known | None  # None: their inbox, log length and read marks are read too
    key: str  # their items key (the one watched)
    channel: str
    writes: list[Command] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    after: _Known | None = None  # what their keys hold once the writes are committed


class _Apply:
    """lua/apply.lua's work for one user, on what was read: the same writes, or _Script."""

    def __init__(self, u: _User, replies: Sequence[Any], limits: FeedLimits, epoch: str):
        self.u, self.limits, self.epoch_new = u, limits, epoch
        self.check = layouts.check_of_epoch(epoch)  # lua/common.lua: the call's CHECK
        user = u.user
        self.k_items, self.k_inbox, self.k_log = u.key, keys.inbox(user), keys.changelog(user)
        self.prefix = keys.group_actors_prefix(user)
        for reply in replies:
            if isinstance(reply, BaseException):  # a key of another type: the script says which
                raise _Script("wrong type")
        regs = replies[0]
        n = len(u.items)
        self.registers: dict[str, bytes | None] = dict(zip(u.items, regs[:n], strict=True))
        raw_state, horizon = regs[n], regs[n + 1]
        known = u.known
        if known is None:
            records, log_len, marks = replies[1:]
            known = _Known(raw_state, horizon, records, _groups(records), log_len, marks > 0)
        elif (raw_state, horizon) != (known.state, known.horizon):
            raise _Script("written elsewhere")  # read again next time
        if raw_state and raw_state[0] != 0:
            raise _Script("old state")  # the state's text of before
        state = layouts.decode_state(raw_state)
        if state.read_all_ms is not None and state.group_marks:
            raise _Script("group read marks")  # some group may have a read mark of its own
        self.known, self.state = known, state
        self.epoch, self.seq, self.unread = state.epoch, state.last_change, state.unread
        self.all = state.read_all_ms  # None: learned from the marks hash when needed (read_all)
        self.dirty = False
        self.new_user = raw_state is None and horizon is None  # lua/common.lua state(): S.no_horizon
        if horizon is not None and len(horizon) > layouts.MS_BYTES:
            raise _Script("cap floor")  # the cap dropped a group: lua/common.lua below_floor
        self.horizon = None if horizon is None else layouts.decode_ms(horizon)
        self.records = list(known.records)
        self.log_len = known.log_len
        self.groups = dict(known.groups)
        self.log: list[bytes] = []
        self.fields: list[bytes | str] = []  # registers, in order

    # -- the inbox list: what lua/common.lua's list functions write -----------------------

    def _put(self, rec: bytes) -> None:
        if layouts.is_group_record(rec):
            self.groups[rec[layouts.MS_BYTES :]] = layouts.decode_ms(rec)

    def _gone(self, rec: bytes) -> None:
        if layouts.is_group_record(rec):
            self.groups.pop(rec[layouts.MS_BYTES :], None)

    @property
    def head(self) -> bytes | None:
        return self.records[0] if self.records else None

    def lpush(self, rec: bytes) -> int:
        self.records.insert(0, rec)
        self._put(rec)
        self.u.writes.append(("LPUSH", self.k_inbox, rec))
        return len(self.records)

    def set_at(self, at: int, rec: bytes) -> int:
        self._gone(self.records[at])
        self.records[at] = rec
        self._put(rec)
        self.u.writes.append(("LSET", self.k_inbox, str(at), rec))
        return len(self.records)

    def lrem(self, rec: bytes) -> None:
        if rec in self.records:  # as LREM: nothing to do if it is not there
            self.records.remove(rec)
            self._gone(rec)
            self.u.writes.append(("LREM", self.k_inbox, "1", rec))

    def insert(self, rec: bytes, t: int, gid: str) -> int:
        """lua/common.lua insert: on top, in place of the same group and time, or before the
        first record that is not newer (its seek), or last."""
        here = self.head
        if not here or t > layouts.decode_ms(here) or _newer(t, gid, *layouts.record_group(here)):
            return self.lpush(rec)
        for at, other in enumerate(self.records):
            ot = layouts.decode_ms(other)
            if ot > t:
                continue
            ogid = layouts.record_group(other)[1] if ot == t else ""
            if ot == t and ogid > gid:
                continue
            if ot == t and ogid == gid:
                return self.set_at(at, rec)
            self.records.insert(at, rec)
            self._put(rec)
            self.u.writes.append(("LINSERT", self.k_inbox, "BEFORE", other, rec))
            return len(self.records)
        self.records.append(rec)  # older than every record
        self._put(rec)
        self.u.writes.append(("RPUSH", self.k_inbox, rec))
        return len(self.records)

    # -- state, read marks, the change log ------------------------------------------------

    def read_all(self) -> int:
        if self.all is None:
            if self.known.has_marks:
                raise _Script("read marks unknown")  # the hash is read (lua/common.lua read_all)
            self.all = 0
            self.dirty = self.dirty or self.epoch is not None
        return self.all

    def add_unread(self, d: int) -> None:
        if d:
            self.unread += d
            self.dirty = True

    def emit(self, op: str, ref: str) -> None:
        self.epoch = self.epoch or layouts.user_epoch(self.epoch_new, self.k_log)
        self.seq += 1
        self.dirty = True
        self.log.append(layouts.encode_log_entry(self.check, op, self.unread, ref))
        self.log_len += 1
        if self.log_len > layouts.trim_past(self.limits.max_changes):
            # the script trims: it keeps the latest burst whole (layouts.BURST_FIELD), which
            # these reads do not see; a trim comes once every max_changes // LOG_SLACK changes
            raise _Script("trim")

    def enforce_cap(self, size: int | None) -> None:
        if size is not None and size > self.limits.max_groups:
            raise _Script("capped")  # the dropped group's registers and the floor: lua/common.lua

    # -- an item ------------------------------------------------------------------------

    def change(self, gid: str, t: int, actor: str) -> int | None:
        """lua/apply.lua change() for a new actor (no member leaves)."""
        read = self.read_all()
        top = self.head
        rec_of = layouts.encode_group_record
        was = self.groups.get(layouts.short_group(gid).encode())
        now = t if was is None or t > was else was
        self.u.writes.append(("ZADD", self.prefix + gid, str(t), layouts.encode_ms(t) + actor.encode()))
        if was == now:
            self.emit(layouts.OP_UPSERT, layouts.short_group(gid))
            return None
        size = None
        rec = rec_of(now, gid)
        old_rec = None if was is None else rec_of(was, gid)
        if old_rec is not None and old_rec == top:  # on top, and staying there
            self.set_at(0, rec)
        else:
            if old_rec is not None:
                self.lrem(old_rec)
            size = self.insert(rec, now, gid)
        self.add_unread((1 if now > read else 0) - (1 if was is not None and was > read else 0))
        self.emit(layouts.OP_UPSERT, layouts.short_group(gid))
        return size

    def apply(self, op: ItemOp) -> int:
        token = layouts.register_token(op.event_id)
        item, st, ts, eid = op.item, op.state, op.at_ms, token.encode()
        kind = item[0]
        old = self.registers.get(item)
        if old is None and st != "x" and self.horizon is not None and ts <= self.horizon:
            return REFUSED
        if old is not None:
            if old[:1] == b"x":
                return 0
            t = layouts.decode_ms(old[1:])
            bar = old.find(b"|", 1 + layouts.MS_BYTES)
            old_eid = old[1 + layouts.MS_BYTES : bar if bar >= 0 else len(old)]
            if st != "x" and (ts < t or (ts == t and eid <= old_eid)):
                return 0
            raise _Script("register updated")  # a member may leave, a record move down
        window = op.group_id.rpartition(":")[2] if st == "a" and kind in "lf" else ""
        register = layouts.encode_register(layouts.Register(st, ts, token, window))
        if kind in "cm":
            read = self.read_all()  # lua/apply.lua: mark(gid), whatever the state
            if st == "a":
                gid = op.group_id
                rec = layouts.encode_single_record(
                    ts, gid, op.actor, op.post, op.text, in_comment=bool(op.comment)
                )
                size = self.insert(rec, ts, gid)
                self.add_unread(1 if ts > read else 0)
                self.emit(layouts.OP_UPSERT, layouts.short_group(gid))
                self.enforce_cap(size)
        elif st == "a":
            self.enforce_cap(self.change(op.group_id, ts, op.actor))
        self.registers[item] = register
        self.fields += (item, register)
        return 1

    def finish(self, shown: int) -> None:
        """The user's log entries, registers and state, after their items' inbox writes."""
        writes = self.u.writes
        if self.log:
            writes.append(("RPUSH", self.k_log, *self.log))
        fields = self.fields
        state, horizon = self.known.state, self.known.horizon
        if self.dirty:
            shown = shown or self.state.shown
            state = layouts.encode_state(
                layouts.UserState(self.epoch, self.seq, self.unread, shown, self.all, False)
            )
            extra: list[bytes | str] = [layouts.STATE_FIELD, state]
            if self.new_user:  # next to the state, near the hash's front (lua/common.lua save)
                horizon = layouts.NO_HORIZON
                extra += (layouts.HORIZON_FIELD, horizon)
            fields = [*fields[:2], *extra, *fields[2:]]
        if fields:
            writes.append(("HSET", self.k_items, *fields))
        self.u.after = _Known(state, horizon, self.records, self.groups, self.log_len, self.known.has_marks)


class DirectApply:
    """The fan-out's apply of the users nobody listens to, on one Redis (see the module)."""

    def __init__(self, redis: Redis, limits: FeedLimits) -> None:
        self._redis, self._limits = redis, limits
        self._listened: dict[str, float] = {}  # user -> until when they go to the script
        self._known: dict[str, _Known] = {}  # the users last committed to, oldest first
        # users in one of this worker's transactions (batches of partitions are applied at
        # once): a batch with one of them waits for it, rather than WATCH the same key and lose
        self._busy: dict[str, asyncio.Future[None]] = {}
        # items by where they went: "direct", or why the script applied them ("listened",
        # "conflict", or what _Apply could not mirror)
        self.stats: Counter[str] = Counter()

    async def apply(self, ops: Sequence[ItemOp], indexes: Sequence[int]) -> tuple[dict[int, int], list[int]]:
        """Apply what it can of ops[indexes]: each applied op's result (1, 0 or REFUSED), and
        the indexes left to the script, in their order."""
        now = time.monotonic()
        by_user: dict[str, list[int]] = {}
        scripted: list[int] = []
        for i in indexes:
            user = ops[i].user
            if self._listened.get(user, 0.0) > now:
                scripted.append(i)
                self.stats["listened"] += 1
            else:
                by_user.setdefault(user, []).append(i)
        done: dict[int, int] = {}
        while by_user:
            free = {u: idx for u, idx in by_user.items() if u not in self._busy}
            if not free:
                await asyncio.wait({self._busy[u] for u in by_user}, return_when=asyncio.FIRST_COMPLETED)
                continue
            mine = asyncio.get_running_loop().create_future()
            self._busy.update(dict.fromkeys(free, mine))
            try:
                users = [
                    self._plan(user, idx, ops, self._known.pop(user, None)) for user, idx in free.items()
                ]
                chunks = [users[i : i + WATCH_USERS] for i in range(0, len(users), WATCH_USERS)]
                for applied, left in await asyncio.gather(
                    *(self._transact(chunk, ops, now) for chunk in chunks)
                ):
                    for u in applied:
                        done.update(zip(u.ops, u.results, strict=True))
                        self.stats["direct"] += len(u.ops)
                        if u.after is not None:
                            self._remember(u.user, u.after)
                    scripted += left
            finally:
                for user in free:
                    del self._busy[user]
                mine.set_result(None)
            by_user = {u: idx for u, idx in by_user.items() if u not in free}
        scripted.sort()
        return done, scripted

    async def _transact(
        self, users: list[_User], ops: Sequence[ItemOp], now: float
    ) -> tuple[list[_User], list[int]]:
        """One WATCH ... EXEC for `users`: those applied (their results set), and the ops left
        to the script."""
        scripted: list[int] = []
        async with connection(self._redis) as roundtrip:
            reads: list[Command] = [("WATCH", *(u.key for u in users))]
            for u in users:
                reads += self._reads(u)
            reads.append(("PUBSUB", "NUMSUB", *(u.channel for u in users)))
            replies = await roundtrip(reads)
            listeners = replies[-1]
            direct: list[_User] = []
            epoch = new_epoch()  # lua/common.lua: the call's epoch candidate
            at = 1
            for n, u in enumerate(users):
                count = 1 if u.known else 4
                user_replies = replies[at : at + count]
                at += count
                if listeners[2 * n + 1] > 0:
                    self._listened_now(u.user, now)
                    scripted += u.ops
                    self.stats["listened"] += len(u.ops)
                    continue
                try:
                    work = _Apply(u, user_replies, self._limits, epoch)
                    u.results = [work.apply(ops[i]) for i in u.ops]
                    work.finish(self._limits.shown_actors)
                except _Script as why:
                    scripted += u.ops
                    self.stats[str(why)] += len(u.ops)
                    continue
                direct.append(u)
            if not any(u.writes for u in direct):
                await roundtrip([("UNWATCH",)])
                applied = direct
            else:
                writes: list[Command] = [("MULTI",)]
                for u in direct:
                    writes += u.writes
                writes.append(("PUBSUB", "NUMSUB", *(u.channel for u in direct)))
                writes.append(("EXEC",))
                exec_reply = (await roundtrip(writes))[-1]
                if exec_reply is None:  # a watched key was written meanwhile: the script's turn
                    scripted += [i for u in direct for i in u.ops]
                    self.stats["conflict"] += sum(len(u.ops) for u in direct)
                    applied = []
                else:
                    if isinstance(exec_reply, BaseException):
                        raise exec_reply
                    for reply in exec_reply:
                        if isinstance(reply, BaseException):
                            raise ResponseError(f"direct apply: {reply}")
                    listeners = exec_reply[-1]
                    late = [u for n, u in enumerate(direct) if listeners[2 * n + 1] > 0]
                    if late:  # subscribed since the reads: their changes were logged, not published
                        await roundtrip([("PUBLISH", u.channel, layouts.RESYNC_MESSAGE) for u in late])
                        for u in late:
                            self._listened_now(u.user, now)
                    applied = direct
        return applied, scripted

    def _remember(self, user: str, known: _Known) -> None:
        if len(self._known) >= KNOWN_USERS:
            del self._known[next(iter(self._known))]
        self._known[user] = known

    def _listened_now(self, user: str, now: float) -> None:
        if len(self._listened) >= _LISTENED_MAX:
            self._listened.clear()
        self._listened[user] = now + LISTENED_FOR_S

    @staticmethod
    def _plan(user: str, idx: list[int], ops: Sequence[ItemOp], known: _Known | None) -> _User:
        items = list(dict.fromkeys(ops[i].item for i in idx))
        return _User(user, list(idx), items, known, keys.toggles(user), keys.user_channel(user))

    @staticmethod
    def _reads(u: _User) -> list[Command]:
        """The user's registers, state and horizon; unless known, their inbox, the length of
        their change log and whether they have read marks."""
        user = u.user
        registers = ("HMGET", u.key, *u.items, layouts.STATE_FIELD, layouts.HORIZON_FIELD)
        if u.known is not None:
            return [registers]
        return [
            registers,
            ("LRANGE", keys.inbox(user), "0", "-1"),
            ("LLEN", keys.changelog(user)),
            ("HLEN", keys.read_marks(user)),
        ]
