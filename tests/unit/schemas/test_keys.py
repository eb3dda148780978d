"""Every key family: its exact format (renaming one orphans live data), one cluster slot per owner."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase

import pytest
from redis.crc import key_slot

from schemas import keys
from schemas.partition_tags import PARTITION_TAGS, SLOTS, partition_slot

USERS = ["alice", "u:1", "a@b.c", "x-y_z", "9" * 128]
USER_KEYS: list[Callable[[str], str]] = [
    keys.toggles,
    keys.inbox,
    keys.read_marks,
    keys.changelog,
    keys.followers,
    keys.following,
    keys.following_registers,
    keys.follower_registers,
    keys.post_records,
    keys.timeline,
    keys.home,
    keys.preferences,
    keys.mutes,
    keys.blocks,
    keys.user_channel,
    lambda u: keys.group_actors(u, "like:p1:19844"),
]
PARTITION_KEYS: list[Callable[[int], str]] = [
    keys.events,
    lambda p: keys.idempotency(p, "evt-1"),
    keys.idempotency_lease,
    keys.idempotency_sweep,
    lambda p: keys.dedupe(p, "evt-1"),
    keys.dead_letters,
    keys.dropped_letters,
    keys.fanout_errors,
]


def test_exact_formats() -> None:
    # Pinned on purpose: a changed format leaves every existing key behind on upgrade.
    assert keys.events(3) == "events:{p8nb}"
    assert keys.idempotency(3, "e-1") == "idem:{p8nb}:12"  # crc32("e-1") % 64
    assert keys.dedupe(3, "e-1") == "dedupe:{p8nb}:e-1"
    assert keys.dead_letters(3) == "dlq:{p8nb}"
    assert keys.dropped_letters(3) == "dlq-dropped:{p8nb}"
    assert keys.fanout_errors(3) == "fanout-errors:{p8nb}"
    assert keys.toggles("bob") == "ni:{u:bob}"
    assert keys.inbox("bob") == "nb:{u:bob}"
    assert keys.group_actors("bob", "g1") == "na:{u:bob}:g1"
    assert keys.read_marks("bob") == "nr:{u:bob}"
    assert keys.changelog("bob") == "nc:{u:bob}"
    assert keys.followers("bob") == "fo:{u:bob}"
    assert keys.following("bob") == "fg:{u:bob}"
    assert keys.following_registers("bob") == "fr:{u:bob}"
    assert keys.follower_registers("bob") == "fe:{u:bob}"
    assert keys.post_records("bob") == "tp:{u:bob}"
    assert keys.timeline("bob") == "tl:{u:bob}"
    assert keys.home("bob") == "hf:{u:bob}"
    assert keys.pulled_authors("star").startswith("feed:pulled:{")
    assert keys.preferences("bob") == "pref:{u:bob}"
    assert keys.mutes("bob") == "mute:{u:bob}"
    assert keys.blocks("bob") == "block:{u:bob}"
    assert keys.user_channel("bob") == "push:{u:bob}"
    assert keys.gateway_control() == "gateway:control"
    assert keys.FANOUT_GROUP == "fanout"


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the text inside the first non-empty `{...}`."""
    start = key.index("{")
    end = key.index("}", start + 1)
    assert end > start + 1, key
    return key[start + 1 : end]


@pytest.mark.parametrize("user", USERS)
def test_a_users_keys_share_one_tag_and_slot(user: str) -> None:
    made = [make(user) for make in USER_KEYS]
    assert {hash_tag(k) for k in made} == {f"u:{user}"}
    assert len({key_slot(k.encode()) for k in made}) == 1
    assert len(set(made)) == len(made)  # no two families collide


@pytest.mark.parametrize("partition", [0, 1, 7, 1023])
def test_a_partitions_keys_share_one_tag_and_slot(partition: int) -> None:
    made = [make(partition) for make in PARTITION_KEYS]
    assert {hash_tag(k) for k in made} == {PARTITION_TAGS[partition]}
    assert len({key_slot(k.encode()) for k in made}) == 1
    assert len(set(made)) == len(made)


def test_owners_never_share_keys() -> None:
    for make in USER_KEYS:
        assert len({make(u) for u in [*USERS, "alice2", "alic"]}) == len(USERS) + 2
    for make_p in PARTITION_KEYS:
        assert len({make_p(p) for p in range(64)}) == 64


def test_group_keys_extend_their_prefix() -> None:
    assert keys.group_actors("bob", "g:1") == keys.group_actors_prefix("bob") + "g:1"


@pytest.mark.parametrize("user", USERS)
def test_user_of_channel_inverts_user_channel(user: str) -> None:
    assert keys.user_of_channel(keys.user_channel(user)) == user


@pytest.mark.parametrize("user", USERS)
def test_derived_patterns_cover_the_derived_keys_and_spare_user_state(user: str) -> None:
    def derived(key: str) -> bool:
        return any(fnmatchcase(key, pattern) for pattern in keys.DERIVED_PATTERNS)

    for make in USER_KEYS:
        key = make(user)
        if make is keys.user_channel:
            continue
        user_state = make in (keys.read_marks, keys.preferences, keys.mutes, keys.blocks)
        assert derived(key) == (not user_state), key
    for make_p in PARTITION_KEYS:
        assert not derived(make_p(0))  # the event log is the source of truth, never rebuilt


@pytest.mark.parametrize("family", ["nt:", "nf:", "ng:", "nu:", "nlog:", "nm:", "followers:"])
def test_a_rebuild_also_deletes_the_views_of_the_layout_before(family: str) -> None:
    assert any(fnmatchcase(family + "{u:bob}:x", pattern) for pattern in keys.DERIVED_PATTERNS)


def test_every_partition_tag_hashes_to_its_chosen_slot() -> None:
    assert len(set(PARTITION_TAGS)) == len(PARTITION_TAGS) == 1024
    for p, tag in enumerate(PARTITION_TAGS):
        assert key_slot(tag.encode()) == partition_slot(p), p


# The standard split of `redis-cli --cluster create` over 3 masters.
THREE_MASTERS = [(0, 5460), (5461, 10922), (10923, 16383)]
SIX_MASTERS = [(i * SLOTS // 6, (i + 1) * SLOTS // 6 - 1) for i in range(6)]


def spread(partitions: int, ranges: list[tuple[int, int]]) -> list[int]:
    slots = [key_slot(keys.events(p).encode()) for p in range(partitions)]
    return [sum(lo <= s <= hi for s in slots) for lo, hi in ranges]


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 5, 8, 16, 17, 32, 100, 1024])
@pytest.mark.parametrize("masters", [THREE_MASTERS, SIX_MASTERS])
def test_partitions_spread_evenly_over_the_masters(partitions: int, masters: list[tuple[int, int]]) -> None:
    counts = spread(partitions, masters)
    assert max(counts) - min(counts) <= 1, counts


def test_bare_index_tags_would_bunch() -> None:
    # what the chosen tags avoid: `{0}`..`{15}` put 7 of 16 partitions on one master
    slots = [key_slot(f"{{{p}}}".encode()) for p in range(16)]
    counts = [sum(lo <= s <= hi for s in slots) for lo, hi in THREE_MASTERS]
    assert max(counts) - min(counts) > 1, counts


@pytest.mark.parametrize("user", USERS)
def test_a_users_names_are_the_same_tag_between_fixed_ends(user: str) -> None:
    """What the apply script relies on to name a user's keys from their items key."""
    names = [
        keys.toggles,
        keys.inbox,
        keys.read_marks,
        keys.changelog,
        keys.group_actors_prefix,
        keys.user_channel,
    ]
    tags = set()
    for name in names:
        before, after = keys.around_user(name)
        made = name(user)
        assert made.startswith(before) and made.endswith(after)
        tags.add(made[len(before) : len(made) - len(after)])
    assert len(tags) == 1 and user in tags.pop()
