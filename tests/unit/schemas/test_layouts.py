"""The byte layouts of schemas/layouts.py round-trip (their Lua side:
tests/integration/feeds/test_layout.py)."""

from __future__ import annotations

import pytest

from schemas import layouts


@pytest.mark.parametrize("at_ms", [-62_135_596_800_000, -1, 0, 1_795_675_004_123, 253_402_300_799_999])
def test_times_round_trip_and_order_as_bytes(at_ms: int) -> None:
    raw = layouts.encode_ms(at_ms)
    assert len(raw) == layouts.MS_BYTES and layouts.decode_ms(raw) == at_ms
    assert raw < layouts.encode_ms(at_ms + 1)


@pytest.mark.parametrize(
    "register",
    [
        layouts.Register("a", 1_795_675_004_123, "e.1", "20783"),
        layouts.Register("i", 0, "ev-2", ""),
        layouts.Register("x", -7, "a:b@c", ""),
    ],
)
def test_registers_round_trip(register: layouts.Register) -> None:
    assert layouts.decode_register(layouts.encode_register(register)) == register


def test_a_register_keeps_a_short_id_and_a_token_of_a_long_one() -> None:
    """The token bounds a register's size whatever the producer's ids; it holds no '|' (the
    window's separator) and knows its event again, as does a register written before it."""
    assert layouts.register_token("e-1234") == "e-1234"
    uuid = "0b9f4a2e-6c1d-4f8a-9e3b-5d7c2a1f0e64"
    token = layouts.register_token(uuid)
    assert token.startswith(layouts.TOKEN_MARK) and len(token) == 9 and "|" not in token
    assert token == layouts.register_token(uuid) != layouts.register_token(uuid[:-1] + "5")
    register = layouts.decode_register(layouts.encode_register(layouts.Register("a", 5, token, "207")))
    assert register.set_by(uuid) and not register.set_by("e-1234")
    assert layouts.Register("a", 5, uuid, "").set_by(uuid)  # a register of before: the id whole
    assert {len(layouts.register_token("x" * n)) for n in range(10, 129)} == {9}
    assert layouts.register_token("x" * 9) == "x" * 9


def test_a_register_of_another_layout_is_refused() -> None:
    with pytest.raises(ValueError):
        layouts.decode_register(b"q1234567e")


@pytest.mark.parametrize("check", [layouts.CHECK_MIN, 12_345_678, 2 * layouts.CHECK_MIN - 1])
def test_log_checks_round_trip(check: int) -> None:
    raw = layouts.encode_log_check(check) + b"u3 lp1:0"
    assert raw[0] >= 128 and layouts.decode_log_check(raw) == (check, b"u3 lp1:0")


def test_an_entry_logged_before_checks_has_check_0() -> None:
    assert layouts.decode_log_check(b"u3 lp1:0") == (0, b"u3 lp1:0")
    with pytest.raises(ValueError):
        layouts.encode_log_check(5)


@pytest.mark.parametrize(
    "change",
    [
        layouts.Published("a1b2c3d4e5f6", 7, 8_400_000, '{"op":"remove","unread":0,"id":"x y"}'),
        layouts.Published("a1b2c3d4e5f6", 8, 8_400_001, "{}", "1795675004123"),
        layouts.Published("a1b2c3d4e5f6", 9, 8_400_002, "{}", "1795675004123", "00-ab-cd-01"),
        layouts.Published("a1b2c3d4e5f6", 10, 8_400_003, '{"type":"feed"}', "1795675004123", feed=True),
    ],
)
def test_published_changes_round_trip(change: layouts.Published) -> None:
    assert layouts.parse_published(layouts.format_published(change)) == change


@pytest.mark.parametrize(
    "state",
    [
        layouts.UserState("a1b2c3d4e5f6", 0, 0),  # without the read marks' summary, as written before
        layouts.UserState("a1b2c3d4e5f6", 2**40 - 1, -3, 1),
        layouts.UserState("a1b2c3d4e5f6", 7, 2, 3, 0, False),
        layouts.UserState("a1b2c3d4e5f6", 7, 2, 3, 1_795_675_004_123, True),
    ],
)
def test_states_round_trip(state: layouts.UserState) -> None:
    raw = layouts.encode_state(state)
    assert raw[0] == 0 and layouts.decode_state(raw) == state


def test_the_text_state_of_before_is_still_read() -> None:
    assert layouts.decode_state(b"a1b2c3d4e5f6 12 3 2") == layouts.UserState("a1b2c3d4e5f6", 12, 3, 2)
    assert layouts.decode_state(None) == layouts.UserState(None, 0, 0)


GROUP_IDS = ["like:p1:20783", "follow:20783", "comment:c1", "mention:c9", "mention:p2~cy"]


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_group_ids_round_trip_through_their_short_form(gid: str) -> None:
    assert layouts.long_group(layouts.short_group(gid)) == gid


def test_records_name_their_group_even_when_the_time_holds_a_bar() -> None:
    at = layouts.decode_ms(b"\x01|||||\x00")  # a time whose bytes are '|'
    assert layouts.record_group(layouts.encode_group_record(at, "like:p1:3")) == (at, "like:p1:3")
    mention = layouts.encode_single_record(at, "mention:p2~cy", "cy", "p2", "a | b", in_comment=False)
    assert layouts.record_group(mention) == (at, "mention:p2~cy")
    assert not layouts.is_group_record(mention)


def test_the_empty_horizon_is_below_every_time_and_a_log_trims_past_its_slack() -> None:
    assert layouts.NO_HORIZON == layouts.encode_ms(-layouts.MS_OFFSET)
    assert layouts.trim_past(256) == 272 and layouts.trim_past(7) == 7
    assert layouts.CHECK_MIN <= layouts.check_of_epoch("ffffff000000") < 2 * layouts.CHECK_MIN
