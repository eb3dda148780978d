"""Which failures every loop takes for a Redis outage."""

from __future__ import annotations

from feeds.cluster import closed_transport


def test_uvloops_closed_transport_is_an_outage_and_nothing_else_is() -> None:
    closed = RuntimeError("unable to perform operation on <TCPTransport closed=True>; the handler is closed")
    assert closed_transport(closed)
    assert not closed_transport(RuntimeError("something else"))
    assert not closed_transport(ValueError("the handler is closed"))
