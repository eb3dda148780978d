"""What the load generator says of the pairs its ledger counts as lost (loadtest/lost.py): the
product's explain on a real Redis, and the clients' check that they saw a user's changes whole."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from loadtest.clients import Box, ClientPlan, Session
from loadtest.lost import BY_DESIGN, explain_lost
from loadtest.protocols import protocol_for
from notifier.runtime.settings import AuthSettings
from tests.conftest import SettingsFactory
from tests.moderation.builders import like, stack

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_the_caps_unpushed_pairs_are_by_design_and_the_rest_are_named(
    redis: Redis, settings_factory: SettingsFactory
) -> None:
    settings = settings_factory({"NOTIFIER_FEEDS_MAX_GROUPS": "2"})
    s = stack(redis, settings, None)
    # u7's inbox holds two groups: run.0 is pushed, then dropped by the cap (its register with
    # it); run.3 comes late, below the cap's floor, and is never applied nor pushed
    await s.send(*(like(f"run.{i}", f"fan{i}", "u7", post=f"p{i}", t=10 + i) for i in range(3)))
    await s.send(like("run.3", "fan3", "u7", post="p3", t=1))
    pairs = [(7, 0), (7, 2), (7, 3), (7, 99)]
    assert await explain_lost(redis, settings, "run", pairs, unseen=set()) == {
        BY_DESIGN: 2,  # run.0 too: only a stream seen whole tells a pushed-then-dropped run.0 from run.3
        "applied, pushed": 1,  # received by nobody, though pushed: a loss
        "unknown": 1,
    }
    # a client that missed changes cannot vouch for any of its user's pairs
    assert await explain_lost(redis, settings, "run", pairs[:3], unseen={7}) == {"not seen whole": 3}


def test_a_client_marks_its_user_unseen_when_a_change_number_is_skipped_or_refetched() -> None:
    plan = ClientPlan(0, (1, 2, 3, 4), ("ws://x",), "notifier", AuthSettings(), "run", 1, 0.0, 0.0, 0.0, 1)
    box = Box(plan)
    proto = protocol_for("notifier")
    whole, skipped, refetched, new = (Session(u, "ws://x", "t", box, proto) for u in (1, 2, 3, 4))
    whole._note(proto.parse(b'{"type":"ready","user":"u1","cursor":"e1.4-9","replayed":0}'))
    whole._advance("e1.5-9")
    # an upsert with the removes of the groups it pushed past the cap: the cursor of the last
    folding = (
        b'{"type":"change","cursor":"e1.8-9","change":{"op":"upsert","unread":1,'
        b'"group":{"id":"comment:run.1","count":1},"dropped":["like:p1:1","like:p2:1"]}}'
    )
    assert proto.change(folding) is None
    whole._note(proto.parse(folding))
    for number in (1, 3):
        skipped._advance(f"e1.{number}-9")
    refetched._advance("e1.1-9")
    refetched._note(proto.parse(b'{"type":"refetch","reason":"cursor_expired","cursor":"e1.7-9"}'))
    new._note(proto.parse(b'{"type":"ready","user":"u4","cursor":"-.0-0","replayed":0}'))
    new._advance("f2.1-5")
    assert box.unseen == {2, 3}
    assert whole.cursor == "e1.8-9" and refetched.cursor == "e1.7-9"
