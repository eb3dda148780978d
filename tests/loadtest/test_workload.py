"""The workload's pure parts: the seeded graph, the presets, and reading event ids off frames."""

from __future__ import annotations

import pytest

from loadtest.graph import SocialGraph
from loadtest.protocols import NotifierProtocol, SocketIOProtocol, event_of_group
from loadtest.scenarios import PRESETS, preset


def test_the_graph_is_seeded() -> None:
    a, b = SocialGraph(1_000, 100, 1.0, seed=7), SocialGraph(1_000, 100, 1.0, seed=7)
    assert a.followers == b.followers and a.online == b.online
    assert [a.recipients(5) for _ in range(20)] == [b.recipients(5) for _ in range(20)]


def test_skew_concentrates_followers_on_a_few_users() -> None:
    flat, steep = SocialGraph(2_000, 0, 0.0, seed=1), SocialGraph(2_000, 0, 1.1, seed=1)
    assert flat.top_share() == pytest.approx(1 / 2_000)
    assert steep.top_share(10) > 0.2


def test_recipients_are_distinct_and_skip_the_excluded() -> None:
    graph = SocialGraph(60, 60, 1.5, seed=3)
    for _ in range(200):
        picked = graph.recipients(50, exclude=0)
        assert len(set(picked)) == 50 and 0 not in picked


def test_every_preset_is_valid_at_full_size() -> None:
    pipeline = {"steady", "ramp", "connections", "celebrity", "reconnect", "burst"}
    stages = {"ingest": "ingest", "fanout": "fanout", "push": "push"}
    assert set(PRESETS) == pipeline | set(stages)
    for scenario in PRESETS.values():
        assert scenario.problems() == []
        assert scenario.stage == ("pipeline" if scenario.name in pipeline else stages[scenario.name])
    # the celebrity's home-feed mode (`--feed`) is the only one, and valid at full size too
    feed = preset("celebrity", feed=True)
    assert (feed.stage, feed.users, feed.problems()) == ("homefeed", 100_000, [])
    with pytest.raises(ValueError, match="no home-feed mode"):
        preset("steady", feed=True)
    assert preset("connections").clients == 10_000
    assert preset("burst").batch == 100
    assert (preset("push").clients, preset("push").rate) == (2_000, 25_000.0)
    assert (preset("ingest").batch, preset("fanout").workers) == (100, 1)
    with pytest.raises(ValueError, match="unknown knobs"):
        preset("steady").with_overrides({"speed": 1})


def test_stage_knobs_are_checked() -> None:
    assert preset("push").with_overrides({"fanout": 5}).problems()  # one message per event to one user
    assert preset("push").with_overrides({"ramp_to": 30_000.0}).problems()
    assert preset("fanout").with_overrides({"events": 0}).problems()
    assert preset("ingest").with_overrides({"rate": 100.0}).problems()  # a closed loop


def test_event_ids_come_back_from_group_ids() -> None:
    assert event_of_group("comment:lt1.42") == "lt1.42"
    assert event_of_group("mention:lt1.42~a7") == "lt1.42"
    assert event_of_group("like:p1:3") is None


def test_frames_are_read_in_both_protocols() -> None:
    ours = NotifierProtocol()
    group = '{"id":"comment:r.5","count":1}'
    change = '{"type":"change","cursor":"e.1-0","change":{"op":"upsert","group":' + group + "}}"
    frame = ours.parse(change)
    assert (frame.event, frame.cursor, frame.note) == ("r.5", "e.1-0", None)
    assert ours.parse('{"type":"ready","user":"u1","cursor":"e.0-0","replayed":0}').ready
    theirs = SocketIOProtocol()
    theirs.hello("tok", None)  # sends nothing yet: the token goes out after the open packet
    assert theirs.parse('0{"sid":"x"}').reply == '40{"token":"tok"}'
    assert theirs.parse("2").reply == "3"
    assert theirs.parse('42["change",{"event":"r.9"}]').event == "r.9"
