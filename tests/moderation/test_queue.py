"""The review queue on a real Redis: idempotent recording, claims as leases, idempotent and
final decisions, filters and paging, bans, and the hash-chained audit trail."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from notifier.moderation.audit import GENESIS, chain_hash
from notifier.moderation.components import Components
from notifier.moderation.policy import Action
from notifier.moderation.queue import ReviewQueue
from notifier.moderation.rules import Verdict
from notifier.runtime.settings import Settings
from schemas import keys
from schemas.errors import Reason, Rejected

from .builders import ANN, BEN, comment

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

HOLD = [Verdict("blocklist", "blocked terms: kys", 1.0)]
FLAG = [Verdict("classifier", "offensive language (0.91)", 0.91)]


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parts(redis: Redis, settings: Settings, clock: Clock) -> Components:
    return Components.build(redis, settings, clock=clock)


@pytest.fixture
def queue(parts: Components) -> ReviewQueue:
    return parts.queue


async def held(queue: ReviewQueue, eid: str = "e1", actor: str = "bob") -> str:
    assert await queue.record(comment(eid, actor, "alice", "kys"), "0/1-0", Action.HOLD, HOLD)
    return eid


async def test_recording_is_idempotent_and_keeps_reasons_and_context(
    queue: ReviewQueue, redis: Redis
) -> None:
    await held(queue, "e1")
    assert not await queue.record(comment("e1", "bob", "alice", "kys"), "0/1-0", Action.HOLD, HOLD)
    await queue.record(comment("e2", "bob", "alice", "shit"), "0/1-0", Action.FLAG, FLAG)
    assert await redis.zcard(keys.mod_index("all")) == 2
    first, second = await queue.get("e1"), await queue.get("e2")
    assert first is not None and second is not None
    assert (first.state, first.action, first.delivered, first.verdicts) == ("pending", "hold", False, HOLD)
    assert (second.action, second.delivered) == ("flag", True)
    assert second.context.earlier_items == 1  # the actor's history at the time
    assert [r.id for r in second.context.recent] == ["e1"]
    assert second.context.recent[0].rules == ["blocklist"]


async def test_two_moderators_claim_one_wins(queue: ReviewQueue) -> None:
    item = await held(queue)
    results: list[str] = []

    async def claim(who: str) -> None:
        moderator = ANN if who == "ann" else BEN
        try:
            await queue.claim(item, moderator)
            results.append(who)
        except Rejected as exc:
            assert exc.reason is Reason.CLAIMED
            results.append("lost")

    async with anyio.create_task_group() as tg:
        tg.start_soon(claim, "ann")
        tg.start_soon(claim, "ben")
    assert sorted(results) in (["ann", "lost"], ["ben", "lost"])
    stored = await queue.get(item)
    assert stored is not None and stored.state == "claimed" and stored.claimed_by in {"ann", "ben"}


async def test_a_claim_blocks_others_until_it_expires(
    queue: ReviewQueue, clock: Clock, settings: Settings
) -> None:
    item = await held(queue)
    claimed = await queue.claim(item, ANN)
    assert claimed.claimed_by == "ann"
    assert (await queue.claim(item, ANN)).claimed_by == "ann"  # renewing one's own claim
    for attempt in (queue.claim(item, BEN), queue.decide(item, "reject", BEN, "no")):
        with pytest.raises(Rejected) as refused:
            await attempt
        assert refused.value.reason is Reason.CLAIMED
    clock.ms += int(settings.moderation.claim_ttl_s * 1000) + 1  # ann walked away
    assert (await queue.claim(item, BEN)).claimed_by == "ben"
    with pytest.raises(Rejected):
        await queue.decide(item, "approve", ANN, "")
    outcome = await queue.decide(item, "reject", BEN, "abusive")
    assert outcome.item.state == "rejected" and outcome.item.claimed_by == ""


async def test_released_claims_free_the_item(queue: ReviewQueue) -> None:
    item = await held(queue)
    await queue.claim(item, ANN)
    with pytest.raises(Rejected) as refused:  # not ben's to release
        await queue.release(item, BEN)
    assert refused.value.reason is Reason.CLAIMED
    stored = await queue.get(item)
    assert stored is not None and stored.claimed_by == "ann"
    assert (await queue.release(item, ANN)).state == "pending"
    assert (await queue.claim(item, BEN)).claimed_by == "ben"


async def test_decisions_are_idempotent_and_a_rejection_is_final(
    queue: ReviewQueue, parts: Components
) -> None:
    item = await held(queue)
    first = await queue.decide(item, "approve", ANN, "fine in context")
    assert (first.changed, first.effect) == (True, f"deliver|{item}")
    again = await queue.decide(item, "approve", BEN, "")
    assert (again.changed, again.effect) == (False, None)
    assert await parts.outbox.pending() == [f"deliver|{item}"]
    reject = await queue.decide(item, "reject", BEN, "changed my mind")
    assert reject.effect == f"recall|{item}"  # it was (to be) delivered: take it back
    assert await parts.outbox.pending() == [f"recall|{item}"]  # the pending delivery is cancelled
    assert not (await queue.decide(item, "reject", ANN, "")).changed
    with pytest.raises(Rejected) as final:
        await queue.decide(item, "approve", ANN, "")
    assert final.value.reason is Reason.DECIDED
    links, _ = await parts.ledger.page(None, 100)
    assert [link.record().action for link in links] == ["approve", "reject"]  # no-ops leave no record


async def test_rejecting_a_held_item_needs_no_recall(queue: ReviewQueue, parts: Components) -> None:
    item = await held(queue)
    outcome = await queue.decide(item, "reject", ANN, "")
    assert outcome.effect is None and await parts.outbox.pending() == []


async def test_unknown_items_are_not_found(queue: ReviewQueue) -> None:
    for attempt in (queue.claim("nope", ANN), queue.decide("nope", "approve", ANN, "")):
        with pytest.raises(Rejected) as missing:
            await attempt
        assert missing.value.reason is Reason.NOT_FOUND


async def test_listing_filters_and_pages(queue: ReviewQueue) -> None:
    for n in range(7):
        actor = "bob" if n % 2 else "carl"
        verdicts, action = (HOLD, Action.HOLD) if n < 4 else (FLAG, Action.FLAG)
        await queue.record(comment(f"e{n}", actor, "alice", "x"), "0/1-0", action, verdicts)
    await queue.decide("e0", "reject", ANN, "")
    await queue.claim("e1", ANN)

    async def ids(**filters: object) -> list[str]:
        out: list[str] = []
        after = 0
        while True:
            page = await queue.page(limit=2, after=after, **filters)  # type: ignore[arg-type]
            out += [i.id for i in page.items]
            if page.next is None:
                return out
            after = page.next

    assert await ids() == [f"e{n}" for n in range(7)]
    assert await ids(state="open") == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert await ids(state="pending") == ["e2", "e3", "e4", "e5", "e6"]
    assert await ids(state="claimed") == ["e1"]
    assert await ids(state="rejected") == ["e0"]
    assert await ids(reason="classifier") == ["e4", "e5", "e6"]
    assert await ids(actor="bob") == ["e1", "e3", "e5"]
    assert await ids(actor="bob", state="pending", reason="blocklist") == ["e3"]


async def test_a_ban_rejects_the_actors_open_items_once(queue: ReviewQueue, parts: Components) -> None:
    await held(queue, "e1", "bob")
    await queue.record(comment("e2", "bob", "alice", "x"), "0/1-0", Action.FLAG, FLAG)
    await held(queue, "e3", "carl")
    await queue.claim("e1", BEN)  # a ban overrides another moderator's claim
    ban, outcomes = await parts.bans.ban("bob", ANN, "spammer")
    assert ban.actor == "bob" and ban.by == "ann"
    assert sorted((o.item.id, o.effect) for o in outcomes) == [("e1", None), ("e2", "recall|e2")]
    assert (await queue.get("e3")) is not None and (await queue.get("e3")).state == "pending"  # type: ignore[union-attr]
    again, more = await parts.bans.ban("bob", BEN, "again")
    assert again == ban and more == []
    assert await parts.bans.of(["bob", "carl"]) == {"bob": ban}
    links, _ = await parts.ledger.page(None, 100)
    assert [link.record().action for link in links] == ["ban", "reject", "reject"]


async def test_audit_records_say_who_what_before_after_and_why(queue: ReviewQueue, parts: Components) -> None:
    item = await held(queue)
    await queue.decide(item, "approve", ANN, "satire")
    (link,), _ = await parts.ledger.page(None, 10)
    record = link.record()
    assert (record.who, record.role, record.action, record.item, record.actor) == (
        "ann",
        "moderator",
        "approve",
        item,
        "bob",
    )
    assert record.before == {"state": "pending", "delivered": "0"}
    assert record.after == {"state": "approved", "delivered": "1"}
    assert (record.reason, record.request) == ("satire", "req-ann")
    assert link.prev == GENESIS and link.hash == chain_hash(GENESIS, link.body)


async def decisions(queue: ReviewQueue, n: int) -> None:
    for i in range(n):
        item = await held(queue, f"e{i}")
        await queue.decide(item, "reject" if i % 2 else "approve", ANN, f"note {i}")


async def test_the_verifier_accepts_an_intact_chain(queue: ReviewQueue, parts: Components) -> None:
    await decisions(queue, 5)
    result = await parts.ledger.verify()
    assert (result.ok, result.checked) == (True, 5)


async def test_the_verifier_detects_an_edited_record(
    queue: ReviewQueue, redis: Redis, parts: Components
) -> None:
    await decisions(queue, 4)
    rows = await redis.xrange(keys.audit())
    # rewrite the trail with the same ids, one body changed (what someone with write access could do)
    await redis.delete(keys.audit())
    for entry_id, fields in rows:
        if entry_id == rows[2][0]:
            fields = {**fields, b"d": fields[b"d"].replace(b"note 2", b"note X")}
        await redis.xadd(keys.audit(), fields, id=entry_id)
    result = await parts.ledger.verify()
    assert (result.ok, result.broken_at) == (False, rows[2][0].decode())
    assert "hash" in result.problem


async def test_the_verifier_detects_deleted_and_injected_records(
    queue: ReviewQueue, redis: Redis, parts: Components
) -> None:
    await decisions(queue, 4)
    rows = await redis.xrange(keys.audit())
    await redis.xdel(keys.audit(), rows[1][0])
    result = await parts.ledger.verify()
    assert (result.ok, result.broken_at) == (False, rows[2][0].decode())

    await redis.delete(keys.audit())
    for entry_id, fields in rows:
        await redis.xadd(keys.audit(), fields, id=entry_id)
    assert (await parts.ledger.verify()).ok
    forged = b'{"at_ms":1,"who":"ann","role":"moderator","action":"approve"}'
    await redis.xadd(keys.audit(), {"d": forged, "p": "f" * 64, "h": chain_hash("f" * 64, forged)})
    assert not (await parts.ledger.verify()).ok


async def test_the_verifier_detects_a_truncated_tail(
    queue: ReviewQueue, redis: Redis, parts: Components
) -> None:
    await decisions(queue, 3)
    rows = await redis.xrange(keys.audit())
    await redis.xdel(keys.audit(), rows[-1][0])
    result = await parts.ledger.verify()
    assert not result.ok and "head" in result.problem


@pytest.mark.parametrize("edit", ["no hash", "not json"])
async def test_a_record_edited_out_of_shape_is_reported_not_a_crash(
    queue: ReviewQueue, redis: Redis, parts: Components, edit: str
) -> None:
    """A field removed or a body that is not JSON: verify says where the chain breaks, and a
    page of the trail still reads (a KeyError made both a 500)."""
    await decisions(queue, 3)
    rows = await redis.xrange(keys.audit())
    await redis.delete(keys.audit())
    for entry_id, fields in rows:
        if entry_id == rows[1][0]:
            fields = (
                {k: v for k, v in fields.items() if k != b"h"}
                if edit == "no hash"
                else {**fields, b"d": b"not json"}
            )
        await redis.xadd(keys.audit(), fields, id=entry_id)
    result = await parts.ledger.verify()
    assert (result.ok, result.broken_at) == (False, rows[1][0].decode())
    page, _ = await parts.ledger.page(None, 10)
    assert [link.entry for link in page] == [r[0].decode() for r in rows]
    newest, more = await parts.ledger.page("0-0", 10, newest_first=True)
    assert (newest, more) == ([], None)  # nothing is before the first id
