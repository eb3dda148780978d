"""feeds.cluster.calls_of: how the inbox, the home feeds and the follow graph cut their members
into script calls."""

from __future__ import annotations

from feeds.cluster import calls_of


def test_members_of_one_group_share_calls_up_to_the_limit_in_their_order() -> None:
    group = {0: "a", 1: "b", 2: "a", 3: "a", 4: "b"}
    assert calls_of(range(5), group.__getitem__, 2) == [("a", [0, 2]), ("a", [3]), ("b", [1, 4])]


def test_a_call_weighs_at_most_the_limit_and_a_heavier_member_goes_alone() -> None:
    weight = {0: 1, 1: 3, 2: 2, 3: 5, 4: 1}
    calls = calls_of(range(5), lambda _: "", 4, weight.__getitem__)
    assert calls == [("", [0, 1]), ("", [2]), ("", [3]), ("", [4])]
