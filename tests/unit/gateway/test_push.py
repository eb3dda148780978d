"""The hub's reading of a published change (gateway/hub.py `Push`, on feeds.changelog.Live): the
layout of schemas/layouts.py, read as `layouts.parse_published` reads it, and the frame written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from gateway.hub import Push
from schemas import layouts, protocol
from schemas.cursor import Cursor

_TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
_WORD = st.text(st.characters(blacklist_categories=["Cs", "Zs", "Cc"]), min_size=1, max_size=12).filter(
    lambda w: layouts.PUBLISHED_SEPARATOR not in w and layouts.TAG_SEPARATOR not in w
)

published = st.builds(
    layouts.Published,
    epoch=_WORD,
    number=st.integers(0, 2**40),
    check=st.integers(0, 2 * layouts.CHECK_MIN - 1),
    payload=_TEXT.map(lambda t: protocol.feed_removed("a", t).decode()),
    accepted_ms=st.one_of(st.just(""), st.integers(0, 2**45).map(str)),
    traceparent=_WORD,
    feed=st.booleans(),
).map(lambda p: p if p.accepted_ms else layouts.Published(p.epoch, p.number, p.check, p.payload, feed=p.feed))


@given(published)
def test_a_push_reads_every_published_change_as_the_layout_defines_it(change: layouts.Published) -> None:
    message = layouts.format_published(change)
    for raw in (message, message.encode()):
        push = Push(raw)
        assert push.cursor == Cursor(change.epoch, change.number, change.check)
        assert (push.payload, push.accepted_ms, push.traceparent, push.feed) == (
            change.payload,
            change.accepted_ms,
            change.traceparent,
            change.feed,
        )
        render = protocol.feed if change.feed else protocol.change
        assert push.text == render(str(push.cursor), change.payload)
        assert push.frame == Frame(Opcode.TEXT, push.text.encode()).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("message", [b"", b"e1 7 9000000", b"e1 x 9000 {}", b"e1 7 9x {}", b"e1 7 9 \xff{}"])
def test_a_message_not_in_the_layout_is_refused(message: bytes) -> None:
    with pytest.raises(ValueError):
        Push(message)
