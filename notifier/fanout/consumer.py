"""FanoutWorker: the consumer of every event-log partition in group `fanout`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import anyio
import msgspec
from anyio.abc import TaskStatus
from redis.asyncio import Redis
from redis.exceptions import ResponseError, TryAgainError

from feeds import graph, timeline
from feeds.changelog import push_tag
from feeds.cluster import REDIS_REFUSING, REDIS_UNAVAILABLE, closed_transport
from feeds.hiding import Hiding
from feeds.home import HomeFeeds
from feeds.horizon import BeyondHorizon
from feeds.inbox import Inbox
from feeds.items import ItemOp, plan
from feeds.limits import FeedLimits
from feeds.preferences import PreferenceStore
from feeds.scripts import Command, run_checked
from notifier.runtime import metrics, tracing
from notifier.runtime.eventlog import LoggedEvent, decode_entry
from notifier.runtime.lifecycle import Backoff
from notifier.runtime.settings import FanoutSettings
from schemas import keys
from schemas.events import PostDeleted

from .deadletter import DeadLetters, Moved

log = logging.getLogger(__name__)


# a batch in hand retried this long for Redis being away makes the worker not ready (`stuck`)
STUCK_S: Final = 30.0
# Redis Cluster's refusal of a script's key whose slot is not (or no longer) served here
_NON_LOCAL: Final = "non local key"


def _raise_if_waiting(exc: ResponseError) -> None:
    """A refusal of Redis's own, or a key of a slot migrating: the batch waits (retried in hand
    with backoff), not the event's failure."""
    if isinstance(exc, REDIS_REFUSING):
        raise exc
    if _NON_LOCAL in str(exc):
        raise TryAgainError(f"a slot is migrating: {exc}") from exc


# an entry that reached max_deliveries with no error of its own recorded is dead-lettered only
# after this many times as many (reclaim): its tries ended in crashes or Redis refusals
NO_ERROR_DELIVERIES: Final = 4

# an entry as Redis sends it: its id and its fields and values in turn (None: deleted from the
# log while pending, as our own history may list it)
RawEntry = tuple[bytes, list[bytes] | None]


class Screen(Protocol):
    """Moderation's port into the fan-out (notifier.moderation.screening.Screener)."""

    async def screen(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        """The events to apply now; the others are held or dropped, and recorded. Idempotent."""


@dataclass(slots=True)
class Stats:
    """What one worker did, for logs and metrics (entries unless named otherwise)."""

    applied: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    lost: int = 0  # deleted from the log while pending (XDEL/XTRIM): recorded in dlq:{p}, never applied
    stale_acks: int = 0  # applied here, then no longer pending at XACK: a late apply (a no-op)
    late_batches: int = 0  # batches with stale acks: this worker paused past min_idle_ms
    redis_errors: int = 0  # error replies (not connection failures): batch left pending, backed off


class FanoutWorker:
    """Reads each partition (own pending entries first, then new ones), applies every event's
    items to the inboxes, and XACKs only after the apply succeeded. Apply is idempotent and
    order-insensitive, so redelivery after a crash, a reclaim or a replay changes nothing.
    Entries pending longer than `min_idle_ms` anywhere are claimed; after `max_deliveries`
    they go to the partition's dead-letter stream."""

    def __init__(
        self,
        redis: Redis,
        settings: FanoutSettings,
        *,
        partitions: int,
        limits: FeedLimits,
        consumer: str,
        blocking: bool = True,
        screen: Screen | None = None,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._partitions = range(partitions)
        self._limits = limits
        self._inbox = Inbox(redis, limits, direct=settings.direct_apply)
        self._dead = DeadLetters(redis)
        self.consumer = consumer
        self._blocking = blocking
        self._screen = screen
        self._stopping = anyio.Event()
        self._waiting = dict.fromkeys(self._partitions, 0)  # fan-outs waiting for a next slice
        # each batch in hand retried for Redis being away: its partition, and since when
        self._retrying: dict[object, tuple[int, float]] = {}
        self._together = _Together(self._process_many)
        self.stats = Stats()
        self._metrics = metrics.current()
        self._traced = tracing.current()

    async def stuck(self) -> str | None:
        """A readiness reason while a partition's batch in hand has been retried for Redis being
        away longer than STUCK_S: a master gone for good, or a slot left half-migrated by an
        interrupted reshard (`redis-cli --cluster fix` closes it); None otherwise."""
        now = time.monotonic()
        stuck = {p: now - since for p, since in self._retrying.values() if now - since > STUCK_S}
        if not stuck:
            return None
        return f"batches retried for Redis for up to {max(stuck.values()):.0f}s on partitions {sorted(stuck)}"

    # -- Service -------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        # what the process built before (the classifier's scikit-learn and SciPy, ~100,000
        # objects) leaves the collector's generations: the collections a busy fan-out triggers
        # would otherwise walk it again and again
        gc.freeze()
        async with anyio.create_task_group() as tg:
            for p in self._partitions:
                tg.start_soon(self._run_partition, p)
            task_status.started()
        s = self.stats
        log.info(
            "fanout stopped consumer=%s applied=%d dead_lettered=%d lost=%d stale_acks=%d redis_errors=%d",
            self.consumer, s.applied, s.dead_lettered, s.lost, s.stale_acks, s.redis_errors,
        )  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()

    async def drain(self) -> int:
        """Process until nothing is new and nothing of ours is pending (tests, replay)."""
        before = self.stats.applied + self.stats.dead_lettered
        for p in self._partitions:
            await self._ensure_group(p)
            await self._read_history(p)
            while entries := await self._read(p, block=False):
                await self._process_all(p, entries)
        return self.stats.applied + self.stats.dead_lettered - before

    async def reclaim(self, partition: int, min_idle_ms: int | None = None) -> int:
        """Claim entries idle past `min_idle_ms` from any consumer; dead-letter the hopeless."""
        idle = self._settings.min_idle_ms if min_idle_ms is None else min_idle_ms
        stream = keys.events(partition)
        pending = await self._redis.xpending_range(
            stream, keys.FANOUT_GROUP, min="-", max="+", count=self._settings.batch_size, idle=idle
        )
        retry = 0
        limit = self._settings.max_deliveries
        failed = await self._dead.failed(
            partition, [p["message_id"] for p in pending if p["times_delivered"] >= limit]
        )
        for p in pending:
            times = p["times_delivered"]
            # an event that failed on its own, max_deliveries times; one whose tries all ended
            # before an error could be recorded (a worker crashing on it, or Redis refusing the
            # writes: out of memory, READONLY) only after NO_ERROR_DELIVERIES times as many
            if times >= limit and (failed.pop(0) or times >= limit * NO_ERROR_DELIVERIES):
                error = f"gave up after {times} deliveries"
                if times >= limit * NO_ERROR_DELIVERIES:
                    error += ", none with an error of its own (a worker crash, or Redis refusing writes)"
                moved = await self._dead.move(partition, p["message_id"], p["times_delivered"], error)
                if moved is Moved.LOST:
                    self._lost(partition, p["message_id"])
                elif moved is Moved.DEAD_LETTERED:
                    self.stats.dead_lettered += 1
                    self._metrics.dead_lettered.inc()
                    log.warning("dead-lettered partition=%d entry=%s", partition, p["message_id"])
            else:
                retry += 1
        if not retry:
            return 0
        # XAUTOCLAIM, not XCLAIM: Redis 7 also names the pending entries deleted from the stream
        # (and drops them from the group), where XCLAIM drops them without a word
        (reply,) = await run_checked(
            self._redis,
            [("XAUTOCLAIM", stream, keys.FANOUT_GROUP, self.consumer, idle, "0-0", "COUNT", retry)],
        )
        claimed: list[RawEntry] = reply[1]
        for entry_id in reply[2]:  # already dropped from the group
            await self._dead.record_lost(partition, entry_id)
            self._lost(partition, entry_id)
        self.stats.reclaimed += len(claimed)
        self._metrics.reclaimed.inc(len(claimed))
        await self._process_all(partition, claimed)
        return len(claimed)

    def _lost(self, partition: int, entry_id: bytes) -> None:
        """An entry deleted from the log while pending (an operator's XDEL, an XTRIM past it):
        never applied; its dead letter (without the event) is written, now count and log it."""
        self.stats.lost += 1
        self._metrics.lost.inc()
        log.error(
            "lost before processing partition=%d entry=%s: deleted from the log while pending",
            partition,
            entry_id.decode(),
        )

    # -- loop ----------------------------------------------------------------------------

    async def _run_partition(self, partition: int) -> None:
        backoff = Backoff(f"fanout partition {partition}")
        acks = Backoff(f"fanout apply and ack partition {partition}")
        history_done = False
        next_claim = 0.0
        # batches applied at once: while one waits for Redis, the next is read and screened
        # (applying is order-insensitive and idempotent, so batches may overlap); only while the
        # partition is behind (the last read filled a batch): caught up, the next read waits for
        # the batches in hand, and gathers what arrives meanwhile
        slots = anyio.Semaphore(self._settings.batches_in_flight)
        behind = False
        async with anyio.create_task_group() as tg:
            while not self._stopping.is_set():
                try:
                    if not history_done:
                        await self._ensure_group(partition)
                        await self._read_history(partition)
                        history_done = True
                    if time.monotonic() >= next_claim:
                        await self.reclaim(partition)
                        next_claim = time.monotonic() + self._settings.claim_interval_ms / 1000
                    await slots.acquire()
                    try:
                        if not behind:
                            await _settle(slots, self._settings.batches_in_flight)
                        # a fan-out waiting for its next slice: no blocking read in its way
                        entries = await self._read(partition, block=not self._waiting[partition])
                    except BaseException:
                        slots.release()
                        raise
                    behind = len(entries) >= self._settings.batch_size
                    if entries:
                        tg.start_soon(self._apply_batch, partition, entries, slots, acks)
                    else:
                        slots.release()
                        if not self._blocking:
                            await anyio.sleep(self._settings.idle_poll_ms / 1000)
                    backoff.reset()
                except REDIS_UNAVAILABLE as exc:
                    await backoff.sleep(exc)
                except RuntimeError as exc:
                    if not closed_transport(exc):
                        raise
                    await backoff.sleep(exc)
                except ResponseError as exc:
                    if "UNBLOCKED" in str(exc):  # the stream's slot migrated away while we waited
                        await backoff.sleep(exc)
                        continue
                    if "NOGROUP" in str(exc):
                        log.warning("consumer group missing partition=%d: recreating", partition)
                        await self._ensure_group(partition)
                        continue
                    await self._redis_error(partition, exc, backoff)

    async def _apply_batch(
        self, partition: int, entries: Sequence[RawEntry], slots: anyio.Semaphore, backoff: Backoff
    ) -> None:
        """Finish the batch in hand even when stopping. Redis unavailable (a blip, a master
        failing over): the batch in hand is applied again after a backoff (applying is
        idempotent), rather than waiting `min_idle_ms` for a reclaim; when stopping, or on an
        error reply (such as NOPERM), its entries stay pending and are reclaimed. Either holds
        the batch's slot, so the partition slows down meanwhile."""
        held, batch = True, object()
        try:
            while entries:
                try:
                    with anyio.CancelScope(shield=True):
                        entries = await self._process(partition, entries)
                except REDIS_UNAVAILABLE as exc:
                    if self._stopping.is_set():
                        raise
                    self.stats.redis_errors += 1
                    self._retrying.setdefault(batch, (partition, time.monotonic()))
                    await backoff.sleep(exc)
                    if isinstance(exc, REDIS_REFUSING):  # reachable: keep the batch ours meanwhile
                        with contextlib.suppress(*REDIS_UNAVAILABLE):  # (no delivery counted)
                            await self._touch(partition, entries)
                    continue
                self._retrying.pop(batch, None)
                backoff.reset()
                if not entries or self._stopping.is_set():
                    break  # an unfinished fan-out left pending resumes after the restart
                # a fan-out with followers left: the partition's next batch goes first (the
                # reader does not block while we wait), then the next slice
                self._waiting[partition] += 1
                held = False
                slots.release()
                try:
                    await slots.acquire()
                    held = True
                finally:
                    self._waiting[partition] -= 1
                await self._touch(partition, entries)
        except REDIS_UNAVAILABLE as exc:
            log.warning("batch left pending partition=%d entries=%d: %s", partition, len(entries), exc)
        except ResponseError as exc:
            await self._redis_error(partition, exc, backoff, entries=len(entries))
        finally:
            self._retrying.pop(batch, None)
            if held:
                slots.release()

    async def _redis_error(
        self, partition: int, exc: ResponseError, backoff: Backoff, *, entries: int = 0
    ) -> None:
        """An error reply (NOPERM after an ACL change, OOM, ...): what was in hand stays pending;
        logged and counted, then a backoff before the next try. The process lives on."""
        self.stats.redis_errors += 1
        log.error("redis error partition=%d entries_left_pending=%d: %s", partition, entries, exc)
        await backoff.sleep(exc)

    async def _ensure_group(self, partition: int) -> None:
        # from 0, not $: a stream recreated after data loss must not skip its first events
        await self._dead.create_group(partition, self.consumer)

    async def _read_history(self, partition: int) -> None:
        """Our own pending entries (a restart under the same name), before anything new."""
        start = b"0"
        while True:
            entries = await self._xreadgroup(partition, start, block=None)
            if not entries:
                return
            await self._process_all(partition, entries)
            start = entries[-1][0]

    async def _read(self, partition: int, *, block: bool) -> list[RawEntry]:
        return await self._xreadgroup(
            partition, b">", block=self._settings.block_ms if block and self._blocking else None
        )

    async def _xreadgroup(self, partition: int, start: bytes, *, block: int | None) -> list[RawEntry]:
        """Up to a batch of our entries after `start` (`>`: new ones), as Redis sends them, by the
        lean pipeline: redis-py's XREADGROUP runs its retry wrapper, reply callbacks and a dict
        per entry in Python, several µs per event."""
        command: Command = ("XREADGROUP", "GROUP", keys.FANOUT_GROUP, self.consumer)
        command += ("COUNT", self._settings.batch_size)
        if block is not None:
            command += ("BLOCK", block)
        (reply,) = await run_checked(self._redis, [(*command, "STREAMS", keys.events(partition), start)])
        entries: list[RawEntry] = reply[0][1] if reply else []
        return entries

    async def _process_all(self, partition: int, entries: Sequence[RawEntry]) -> None:
        """Process `entries` to the end of every fan-out they start, keeping the unfinished ones
        ours between slices (reclaim, history, drain)."""
        while entries:
            entries = await self._process(partition, entries)
            await self._touch(partition, entries)

    async def _touch(self, partition: int, entries: Sequence[RawEntry]) -> None:
        """Reset the idle time of pending `entries` (a fan-out between two slices), so no other
        worker reclaims them while this one is alive (XCLAIM JUSTID counts no delivery)."""
        if entries:
            await self._redis.xclaim(
                keys.events(partition),
                keys.FANOUT_GROUP,
                self.consumer,
                0,
                [e[0] for e in entries],
                justid=True,
            )

    async def _process(self, partition: int, entries: Sequence[RawEntry]) -> list[RawEntry]:
        """Apply and acknowledge `entries`, with the other partitions' batches ready at the same
        moment (`_Together`); the ones whose home-feed fan-out has followers left (their
        position stored: process them again to continue) stay pending and are returned."""
        return await self._together.process(partition, entries)

    async def _process_many(self, batches: Sequence[tuple[int, Sequence[RawEntry]]]) -> list[list[RawEntry]]:
        """`_process` of several partitions' batches as one: screened, gated and applied
        together, acknowledged per partition in one round trip; per batch, what stays pending."""
        started = time.perf_counter()
        events: list[LoggedEvent] = []
        partition_at: dict[int, int] = {}  # id() of each decoded event -> its partition
        for partition, entries in batches:
            for entry_id, fields in entries:
                if not fields:  # deleted from the log while pending (XREADGROUP of our history)
                    if await self._dead.move(partition, entry_id, 0, "") is Moved.LOST:
                        self._lost(partition, entry_id)
                    continue
                try:
                    pairs = iter(fields)
                    logged = decode_entry(entry_id, dict(zip(pairs, pairs, strict=True)))
                except (KeyError, ValueError, msgspec.DecodeError) as exc:
                    await self._dead.move(partition, entry_id, 1, f"undecodable entry: {exc}")
                    self.stats.dead_lettered += 1
                    self._metrics.dead_lettered.inc()
                    continue
                events.append(logged)
                partition_at[id(logged)] = partition
        if not events:
            return [[] for _ in batches]
        # moderation: screened events not returned are held or dropped, and acked all the same
        if self._screen is None:
            apply: Sequence[LoggedEvent] = events
        else:
            phase = time.perf_counter()
            apply = await self._screen.screen(events)
            self._metrics.phase_screen.observe(time.perf_counter() - phase)
        unfinished_at: set[int] = set()
        failed_at = await apply_events(
            self._inbox, self._limits, apply, self._metrics, self._traced, unfinished_at
        )
        # per partition (entry ids are unique in a partition, not across partitions)
        failed: dict[int, dict[bytes, str]] = {}
        for i, error in failed_at.items():
            failed.setdefault(partition_at[id(apply[i])], {})[apply[i].entry_id] = error
        unfinished: dict[int, set[bytes]] = {}
        for i in unfinished_at:
            unfinished.setdefault(partition_at[id(apply[i])], set()).add(apply[i].entry_id)
        done: dict[int, list[bytes]] = {}
        kept = {p: failed.get(p, {}).keys() | unfinished.get(p, set()) for p, _ in batches}  # pending
        for logged in events:
            partition = partition_at[id(logged)]
            if logged.entry_id not in kept[partition]:
                done.setdefault(partition, []).append(logged.entry_id)
        for partition, errors in failed.items():
            self.stats.failed += len(errors)
            self._metrics.events_failed.inc(len(errors))
            await self._dead.record_errors(partition, errors)
            log.warning("apply failed partition=%d entries=%d", partition, len(errors))
        phase = time.perf_counter()
        acked = await self._dead.acknowledge_many(done)
        self._metrics.phase_ack.observe(time.perf_counter() - phase)
        for partition, ids in done.items():
            self.stats.applied += len(ids)
            self._metrics.events_applied.inc(len(ids))
            if acked[partition] < len(ids):  # claimed by another worker meanwhile: our apply came late
                self.stats.stale_acks += len(ids) - acked[partition]
                self._metrics.stale_acks.inc(len(ids) - acked[partition])
                self.stats.late_batches += 1
                log.warning(
                    "stale ack partition=%d entries=%d not_pending=%d: applied late (a no-op) after "
                    "a pause past min_idle_ms; another consumer had claimed them",
                    partition,
                    len(ids),
                    len(ids) - acked[partition],
                )
        self._metrics.apply_seconds.observe(time.perf_counter() - started)
        log.debug(
            "batch partitions=%d applied=%d failed=%d",
            len(batches),
            sum(len(ids) for ids in done.values()),
            len(failed_at),
        )
        return [[e for e in entries if e[0] in unfinished.get(p, ())] for p, entries in batches]


async def _settle(slots: anyio.Semaphore, size: int) -> None:
    """Wait until the caller's slot is the only one of `slots` (of `size`) taken: every other
    batch of the partition is applied."""
    taken = 0
    try:
        while taken < size - 1:
            await slots.acquire()
            taken += 1
    finally:
        for _ in range(taken):
            slots.release()


_Queued = tuple[int, Sequence[RawEntry], asyncio.Future[list[RawEntry]]]  # partition, batch, result


class _Together:
    """Batches of several partitions ready at the same moment are processed as one
    (`FanoutWorker._process_many`): a request's events reach each partition's reader at once
    (one append call a partition), and a batch's fixed cost (screening, the preference gate,
    the apply and the acks: a round trip each, and the worker's CPU around them) is paid once
    instead of once a partition. A batch waits for no other: the ones read while the event loop
    turns once join it."""

    def __init__(
        self, process: Callable[[Sequence[tuple[int, Sequence[RawEntry]]]], Awaitable[list[list[RawEntry]]]]
    ) -> None:
        self._process = process
        self._queued: list[_Queued] = []
        self._running: set[asyncio.Future[None]] = set()  # strong references: the loop keeps weak ones

    async def process(self, partition: int, entries: Sequence[RawEntry]) -> list[RawEntry]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[RawEntry]] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._start)
        self._queued.append((partition, entries, future))
        return await future

    def _start(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.ensure_future(self._run(queued))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, queued: list[_Queued]) -> None:
        """Each caller gets its batch's result, or the error that stopped them all (a Redis
        error: each partition backs off and retries its own batch, which is idempotent)."""
        try:
            results = await self._process([(p, entries) for p, entries, _ in queued])
        except BaseException as exc:
            for _, _, future in queued:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(queued, results, strict=True):
            if not future.done():
                future.set_result(result)


async def apply_events(
    inbox: Inbox,
    limits: FeedLimits,
    events: Sequence[LoggedEvent],
    counted: metrics.Metrics | None = None,
    traced: tracing.Tracing | None = None,
    unfinished: set[int] | None = None,
) -> dict[int, str]:
    """Apply every item of `events` the recipients' preferences let through in one round trip
    (one more reads the preferences; the follow graph's and the timelines' changes take one more
    each, when there are any), then the home feeds' (feeds/home.py); the error of each event
    that failed, by its index in `events` (a batch of several partitions may hold two entries
    of the same id). `counted` counts the items written and times the phases; `traced` traces
    the batch, each event and each item. Given `unfinished`, a home-feed fan-out runs one
    slice and the indexes of the events with followers left are added to it (apply them again
    to continue); else every fan-out runs to its end."""
    planned: list[tuple[int, ItemOp]] = []
    follow_ops: list[graph.FollowOp] = []
    post_ops: list[timeline.PostOp] = []
    follow_owners: list[int] = []
    post_owners: list[int] = []
    for i, logged in enumerate(events):
        planned += [(i, op) for op in plan(logged.event, limits)]
        follows, posts = graph.plan(logged.event), timeline.plan(logged.event, logged.accepted_ms)
        follow_ops += follows
        post_ops += posts
        follow_owners += [i] * len(follows)
        post_owners += [i] * len(posts)
    # the recipients' preferences first: an item they turned off, muted or blocked is not
    # written, nor a follow between users who block each other (nor back-filled)
    timed = counted or metrics.DISABLED
    phase = time.perf_counter()
    preferences = PreferenceStore(inbox.redis)
    # a mute or block added between the preference reads and the writes below: its hiding pass
    # may have looked before these items were written (keys.relations_changed)
    relations = await preferences.relations_changed() if any(op.state == "a" for _, op in planned) else None
    kept = await preferences.keep([op for _, op in planned], follow_ops)
    timed.phase_preferences.observe(time.perf_counter() - phase)
    planned = [p for p, keep in zip(planned, kept.items, strict=True) if keep]
    follow_ops = [op for op, keep in zip(follow_ops, kept.follows, strict=True) if keep]
    follow_owners = [o for o, keep in zip(follow_owners, kept.follows, strict=True) if keep]
    ops = [op for _, op in planned]
    spans = None
    if traced is not None:
        from .spans import ApplySpans  # needs the tracing extra, which only a traced role has

        spans = ApplySpans(traced, events)
    tags = [
        push_tag(events[i].accepted_ms) if spans is None else spans.tag(i, events[i], op) for i, op in planned
    ]
    phase = time.perf_counter()
    try:
        errors = await inbox.apply(ops, tags)
    except BaseException as exc:
        if spans is not None:
            spans.end([exc] * len(ops))
        raise
    if spans is not None:
        spans.end(errors)
    timed.phase_inbox.observe(time.perf_counter() - phase)
    for error in errors:  # Redis refusing writes, a slot migrating: not an event failing
        if isinstance(error, ResponseError):
            _raise_if_waiting(error)
    if relations is not None and await preferences.relations_changed() != relations:
        written = [op for op, error in zip(ops, errors, strict=True) if error is None and op.state == "a"]
        if written:
            try:
                await Hiding(inbox.redis, limits).enforce(written)
            except ResponseError as exc:
                _raise_if_waiting(exc)
                log.warning("hiding again what a mute during the batch hides failed: %s", exc)
    failed: dict[int, str] = {}

    def fail(owner: int, error: BaseException) -> None:
        failed.setdefault(owner, f"{type(error).__name__}: {error}")

    refused: list[str] = []
    for (i, op), error in zip(planned, errors, strict=True):
        if isinstance(error, BeyondHorizon):  # final: applying it again would be refused again
            refused.append(f"{events[i].event.id}>{op.user}")
        elif error is not None:
            fail(i, error)
    for i, logged in enumerate(events):
        deleted = logged.event
        if isinstance(deleted, PostDeleted):
            try:  # what notified its author about it (its mentions are items of their own)
                await Hiding(inbox.redis, limits).retract_post(
                    deleted.actor, deleted.post, deleted.at_ms, deleted.id
                )
            except ResponseError as exc:
                _raise_if_waiting(exc)
                fail(i, exc)
    if refused:
        log.warning(
            "refused items=%d beyond the recipients' trimmed horizon (older than its retention "
            "and lateness bound), not applied: %s",
            len(refused),
            " ".join(refused[:10]),
        )
    if counted is not None:
        counted.items_beyond_horizon.inc(len(refused))
        counted.items_applied.inc(len(errors) - sum(e is not None for e in errors))
        for path, n in inbox.take_direct_stats().items():
            counted.direct_items.labels(path).inc(n)
    phase = time.perf_counter()
    follow_states = await graph.FollowGraph(inbox.redis).apply(follow_ops)
    post_states = await timeline.Timelines(inbox.redis, limits).apply(post_ops)
    home = HomeFeeds(inbox.redis, limits)
    # the home feeds act on each follow's state once applied (the same on a redelivery), for
    # the whole batch at once: per follower and author, on the state their last op left,
    # if one of their ops asked for it (a follow back-fills, an unfollow drops the posts)
    final: dict[tuple[str, str], str] = {}
    asked: dict[tuple[str, str], set[bool]] = {}  # whether the ops asked to follow
    owners: dict[tuple[str, str], list[int]] = {}
    for follow_op, state, owner in zip(follow_ops, follow_states, follow_owners, strict=True):
        if isinstance(state, BaseException):
            fail(owner, state)
            continue
        pair = (follow_op.follower, follow_op.user)
        final[pair] = state
        asked.setdefault(pair, set()).add(follow_op.state == "a")
        owners.setdefault(pair, []).append(owner)
    backfill = [pair for pair, state in final.items() if state == "a" and True in asked[pair]]
    dropped = [pair for pair, state in final.items() if state != "a" and False in asked[pair]]
    for change, pairs in ((home.backfill, backfill), (home.drop_authors, dropped)):
        try:
            await change(pairs)
        except ResponseError as exc:
            for owner in (owner for pair in pairs for owner in owners[pair]):
                fail(owner, exc)
    for post_op, state, owner in zip(post_ops, post_states, post_owners, strict=True):
        try:
            if isinstance(state, BaseException):
                raise state
            if post_op.state == "a" and state == "a":
                tag = push_tag(events[owner].accepted_ms)
                done = await home.publish(post_op.author, post_op.post, tag)
                while not done and unfinished is None:
                    done = await home.publish(post_op.author, post_op.post, tag)
            elif post_op.state == "x":
                done = await home.retract_post(post_op.author, post_op.post)
                while not done and unfinished is None:
                    done = await home.retract_post(post_op.author, post_op.post)
            else:
                done = True
            if not done and unfinished is not None:
                unfinished.add(owner)
        except ResponseError as exc:
            fail(owner, exc)
    timed.phase_feeds.observe(time.perf_counter() - phase)
    return failed
