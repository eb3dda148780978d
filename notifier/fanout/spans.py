"""The fan-out's spans when tracing is on: a span per batch (linked to its events), one per event
(child of the event's append, whose context travels in the log entry) and one per recipient item
(child of the event's); each item's context rides with its published change to the gateway."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Span, Status, StatusCode

from feeds.changelog import push_tag
from feeds.items import ItemOp
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.tracing import Tracing


class ApplySpans:
    def __init__(self, traced: Tracing, events: Sequence[LoggedEvent]) -> None:
        self._traced = traced
        self._batch = traced.span(
            "fanout.batch", links=[e.trace for e in events], attributes={"notifier.events": len(events)}
        )
        self._events: dict[int, Span] = {}  # by the event's index in the batch
        self._items: list[Span] = []

    def tag(self, index: int, logged: LoggedEvent, op: ItemOp) -> str:
        """The push tag of `op`'s change (of the batch's event `index`), carrying its new item
        span's context."""
        event = self._events.get(index)
        if event is None:
            event = self._events[index] = self._traced.span(
                "fanout.apply",
                logged.trace or self._batch,
                attributes={"notifier.event_id": logged.event.id, "notifier.entry": logged.entry_id.decode()},
            )
        item = self._traced.span("fanout.apply_item", event, attributes={"notifier.user": op.user})
        self._items.append(item)
        return push_tag(logged.accepted_ms, self._traced.traceparent(item))

    def end(self, errors: Sequence[BaseException | None]) -> None:
        for span, error in zip(self._items, errors, strict=True):
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, str(error)))
            span.end()
        for span in self._events.values():
            span.end()
        self._batch.end()
