"""The process's Prometheus metrics: one registry per process, its metric families with their
label children bound once, and the samplers that compute the costly gauges at scrape time."""

from __future__ import annotations

import bisect
import contextvars
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final

import anyio
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from schemas.errors import Reason, Rejected

log = logging.getLogger(__name__)

Sampler = Callable[[], Awaitable[None]]
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
SAMPLE_TIMEOUT_S: Final = 2.0  # a scrape answers with what it has when Redis is slow
_DIGITS: Final = re.compile(r"\s*\d+$")


class _Null:
    """Stands in for every metric while metrics are off: each call costs one method call."""

    def labels(self, *_: Any, **__: Any) -> _Null:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass

    def clear(self) -> None:
        pass

    def collect(self) -> list[Any]:
        return []


_NULL: Final = _Null()

# The roles that export each family (README "Metrics"): a family another role would only show
# as zeros is not registered there (a `sum` or `absent` alert over them misleads). By name
# prefix, the first that matches; `notifier up` and a Metrics without a role export them all.
_FAMILY_ROLES: Final = (
    ("notifier_ingest_", {"api"}),
    ("notifier_fanout_lag_entries", {"worker", "api"}),
    ("notifier_fanout_pending_entries", {"worker", "api"}),
    ("notifier_fanout_oldest_pending_age_seconds", {"worker", "api"}),
    ("notifier_fanout_dead_letters", {"worker", "api"}),
    ("notifier_fanout_", {"worker"}),
    ("notifier_moderation_outbox_effects", {"jobs"}),
    ("notifier_moderation_", {"worker"}),
    ("notifier_gateway_", {"gateway"}),
)


class Metrics:
    """Every metric a role may update. Label children used on a hot path are bound here once
    (`*_by_*` dicts), so an update is one `inc()`/`observe()`. Disabled, every metric is a no-op
    and `/metrics` answers 404, so the cost of metrics can be measured against none."""

    def __init__(self, *, enabled: bool = True, role: str | None = None) -> None:
        self.enabled = enabled
        self._role = None if role == "up" else role
        self.registry = CollectorRegistry(auto_describe=False)
        self._samplers: list[tuple[Sampler, tuple[Any, ...]]] = []
        c, g, h = self._counter, self._gauge, self._histogram

        # ingest (api)
        requests = c(
            "notifier_ingest_requests_total",
            "POST /v1/events by result: accepted (202), rejected (every event), refused (reason)",
            ("result", "reason"),
        )
        self.ingest_requests_accepted = requests.labels("accepted", "")
        self.ingest_requests_rejected = requests.labels("rejected", "")
        self.ingest_requests_refused = _ByReason(lambda r: requests.labels("refused", r.value))
        events = c(
            "notifier_ingest_events_total",
            "events posted, by result and rejection reason",
            ("result", "reason"),
        )
        self.ingest_events_accepted = events.labels("accepted", "")
        self.ingest_events_duplicate = events.labels("duplicate", "")
        self.ingest_events_rejected = _ByReason(lambda r: events.labels("rejected", r.value))
        self.append_seconds = h("notifier_ingest_append_seconds", "event-log append round trip, per request")
        self.backpressure = g(
            "notifier_ingest_backpressure",
            "1 while ingest refuses events (fan-out backlog, Redis memory, an evicting policy, a replica)",
        )

        # fan-out (worker)
        self.lag = g(
            "notifier_fanout_lag_entries", "entries not yet read by the fanout group", ("partition",)
        )
        self.pending = g(
            "notifier_fanout_pending_entries", "entries read but not acknowledged", ("partition",)
        )
        self.oldest_pending = g(
            "notifier_fanout_oldest_pending_age_seconds",
            "age (since acceptance) of the oldest pending entry",
            ("partition",),
        )
        self.dead_letters = g(
            "notifier_fanout_dead_letters", "entries in the dead-letter stream", ("partition",)
        )
        self.apply_seconds = h("notifier_fanout_apply_seconds", "screening, apply and ack of one batch")
        phases = h(
            "notifier_fanout_phase_seconds",
            "one batch's time in each `phase`, in turn: screen (moderation), preferences, inbox "
            "(the apply scripts; a batch's live changes leave Redis when its last call ends), feeds "
            "(follow graph, timelines, home feeds), ack",
            ("phase",),
        )
        self.phase_screen, self.phase_preferences, self.phase_inbox, self.phase_feeds, self.phase_ack = (
            phases.labels(phase) for phase in ("screen", "preferences", "inbox", "feeds", "ack")
        )
        self.events_applied = c(
            "notifier_fanout_events_applied_total",
            "events acknowledged: applied, or held or dropped by moderation",
        )
        self.items_applied = c(
            "notifier_fanout_items_applied_total", "inbox items written (one per recipient)"
        )
        self.direct_items = c(
            "notifier_fanout_direct_items_total",
            "inbox items offered to the direct apply (NOTIFIER_FANOUT_DIRECT_APPLY), by `path`: "
            "direct, or why the script applied them (listened, conflict, written elsewhere ...)",
            ("path",),
        )
        self.items_beyond_horizon = c(
            "notifier_fanout_items_beyond_horizon_total",
            "inbox items refused: older than the recipient's trimmed horizon (feeds/horizon.py)",
        )
        self.events_failed = c(
            "notifier_fanout_events_failed_total", "events whose apply failed (left pending)"
        )
        self.dead_lettered = c("notifier_fanout_dead_lettered_total", "entries moved to a dead-letter stream")
        self.reclaimed = c("notifier_fanout_reclaimed_total", "entries claimed from idle consumers")
        self.lost = c(
            "notifier_fanout_lost_total",
            "entries deleted from the log before processing, pending or unread (dead letters, no event)",
        )
        self.stale_acks = c(
            "notifier_fanout_stale_acks_total",
            "entries applied late: no longer pending at XACK (claimed by another worker meanwhile)",
        )

        # moderation (worker screens, jobs run its effects)
        self.moderation_actions = c(
            "notifier_moderation_actions_total",
            "screened texts by deciding rule and action",
            ("rule", "action"),
        )
        self.moderation_id_collisions = c(
            "notifier_moderation_id_collisions_total",
            "comments and mentions not delivered: their id is another actor's moderated event's",
        )
        self.moderation_queue = g("notifier_moderation_queue_items", "review items waiting for a moderator")
        self.moderation_oldest = g(
            "notifier_moderation_oldest_waiting_age_seconds",
            "age of the oldest review item waiting for a moderator",
        )
        self.outbox = g(
            "notifier_moderation_outbox_effects", "moderation effects (deliver, recall) not yet done"
        )

        # gateway
        self.connections = g("notifier_gateway_connections", "open WebSocket connections")
        frames = c("notifier_gateway_frames_sent_total", "frames sent to clients by kind", ("kind",))
        self.frames_live = frames.labels("live")
        self.frames_replay = frames.labels("replay")
        self.frames_control = frames.labels("control")
        self.resumes = c("notifier_gateway_resumes_total", "sessions that resumed from a cursor")
        self.refetches = c(
            "notifier_gateway_refetches_total", "refetch frames (the cursor fell out of the log)"
        )
        self.position_resyncs = c(
            "notifier_gateway_position_resyncs_total",
            "sessions the position check found behind their change log (a live push missed), caught up",
        )
        self._closes = c(
            "notifier_gateway_closes_total",
            "sessions ended by code (server closes) or by the client",
            ("code", "reason"),
        )
        self.closes_by_reason = _ByReason(lambda r: self._closes.labels(str(_ws_code(r)), r.value))
        self.closes_client = self._closes.labels("", "client")
        self.push_seconds = h(
            "notifier_gateway_push_latency_seconds",
            "from the event's acceptance (ingest) to the socket write of its change",
        )

        # Redis, every role
        self._redis_errors = c(
            "notifier_redis_errors_total", "failed Redis round trips by component", ("component",)
        )
        self._redis_reconnects = c(
            "notifier_redis_reconnects_total", "Redis recoveries after failures, by component", ("component",)
        )

    # -- construction ----------------------------------------------------------------------

    def _exported(self, name: str) -> bool:
        """Whether this process exports family `name` (_FAMILY_ROLES)."""
        if not self.enabled:
            return False
        if self._role is None:
            return True
        return next((self._role in roles for prefix, roles in _FAMILY_ROLES if name.startswith(prefix)), True)

    def _counter(self, name: str, doc: str, labels: Iterable[str] = ()) -> Any:
        if not self._exported(name):
            return _NULL
        counter = LoopCounter(name, doc, tuple(labels))
        self.add_collector(counter.collect)
        return counter

    def _gauge(self, name: str, doc: str, labels: Iterable[str] = ()) -> Any:
        return Gauge(name, doc, tuple(labels), registry=self.registry) if self._exported(name) else _NULL

    def _histogram(self, name: str, doc: str, labels: Iterable[str] = ()) -> Any:
        if not self._exported(name):
            return _NULL
        histogram = LoopHistogram(name, doc, tuple(labels))
        self.add_collector(histogram.collect)
        return histogram

    def redis_errors(self, component: str) -> Any:
        return self._redis_errors.labels(_DIGITS.sub("", component))

    def redis_reconnects(self, component: str) -> Any:
        return self._redis_reconnects.labels(_DIGITS.sub("", component))

    def add_sampler(self, sampler: Sampler, *gauges: Any) -> None:
        """`sampler` sets `gauges` from Redis before each scrape (never on a hot path)."""
        if self.enabled:  # the shared DISABLED instance keeps nothing
            self._samplers.append((sampler, gauges))

    def add_collector(self, collect: Callable[[], Iterator[Metric]]) -> None:
        """`collect` yields metric families computed from in-process state at scrape time."""
        if self.enabled:
            self.registry.register(_Collector(collect))

    # -- scrape ----------------------------------------------------------------------------

    def closes_by_transport(self, code: int) -> _Count:
        """Sessions the server's transport closed for the client's fault (a protocol error, a
        frame flood, a message too big, no pong: gateway/wsserver.py), with their `code`."""
        child: _Count = self._closes.labels(str(code), "protocol")
        return child

    def closes_at_shutdown(self, code: int) -> _Count:
        """The gateway's sessions its own shutdown closed, with the transport's `code`
        (gateway/wsserver.py: a standard code, not one of CODES)."""
        child: _Count = self._closes.labels(str(code), Reason.SHUTTING_DOWN.value)
        return child

    async def render(self) -> bytes:
        """The Prometheus text page, samplers run first, at once and each bounded (a frozen
        Redis costs the scrape one SAMPLE_TIMEOUT_S). A failure is logged and leaves the
        sampler's gauges out of the page, or NaN for one without labels (an unknown lag is no
        sample, not the last one seen: alert on `absent()` or on notifier_redis_errors_total)."""

        async def sample(sampler: Sampler, gauges: tuple[Any, ...]) -> None:
            try:
                with anyio.fail_after(SAMPLE_TIMEOUT_S):
                    await sampler()
                return
            except TimeoutError:
                log.warning("metrics sampler failed: no answer within %ss", SAMPLE_TIMEOUT_S)
            except Exception as exc:  # a scrape must answer even when Redis does not
                log.warning("metrics sampler failed: %s: %s", type(exc).__name__, exc)
            for gauge in gauges:
                gauge.clear()  # a labelled gauge's samples go
                if any(family.samples for family in gauge.collect()):
                    gauge.set(math.nan)  # one without labels always has its sample: unknown

        async with anyio.create_task_group() as tg:
            for sampler, gauges in self._samplers:
                tg.start_soon(sample, sampler, gauges)
        return generate_latest(self.registry)


# Counters and histograms are updated only from the process's event loop (one thread), so they
# need no lock: prometheus-client's take one per update and cost 1-4 µs each (measured on this
# machine: a Histogram.observe was 3.5 µs, these 0.3 µs), which showed on the ingest and push paths.


class LoopCounter:
    """A counter family: `labels(...)` binds a child once; `inc` is one addition; exported at
    scrape time."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...] = ()) -> None:
        self._name, self._doc, self._labelnames = name.removesuffix("_total"), doc, labelnames
        self._children: dict[tuple[str, ...], _Count] = {}
        self._own = _Count()

    def labels(self, *values: str) -> _Count:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Count()
        return child

    def inc(self, amount: float = 1) -> None:
        self._own.value += amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labelnames)
        if self._labelnames:
            for values, child in self._children.items():
                family.add_metric(list(values), child.value)
        else:
            family.add_metric([], self._own.value)
        yield family


class _Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram (or with `labelnames`, a family: `labels(...)` binds a child once):
    `observe` is a bisect and two additions; exported at scrape time."""

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> None:
        self._name, self._doc, self._labelnames, self._bounds = name, doc, labelnames, buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._children: dict[tuple[str, ...], LoopHistogram] = {}

    def labels(self, *values: str) -> LoopHistogram:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = LoopHistogram(self._name, self._doc, buckets=self._bounds)
        return child

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        if not self._labelnames:
            buckets = self._cumulative()
            yield HistogramMetricFamily(self._name, self._doc, buckets=buckets, sum_value=self._sum)
            return
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child._cumulative(), child._sum)
        yield family

    def _cumulative(self) -> list[tuple[str, float]]:
        cumulative: list[tuple[str, float]] = []
        total = 0
        bounds = [str(float(b)) for b in self._bounds]  # `le` as prometheus-client writes it
        for bound, count in zip([*bounds, "+Inf"], self._counts, strict=True):
            total += count
            cumulative.append((bound, total))
        return cumulative


class _ByReason(dict[Reason, Any]):
    """A label child per reason, bound on first use (a page shows the reasons that occurred)."""

    def __init__(self, bind: Callable[[Reason], Any]) -> None:
        super().__init__()
        self._bind = bind

    def __missing__(self, reason: Reason) -> Any:
        child = self[reason] = self._bind(reason)
        return child


class _Collector:
    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self.collect = collect

    def describe(self) -> list[Metric]:
        return []


def _ws_code(reason: Reason) -> int:
    return Rejected(reason, "").ws_close_code


DISABLED: Final = Metrics(enabled=False)
_current: contextvars.ContextVar[Metrics] = contextvars.ContextVar("notifier_metrics", default=DISABLED)


def current() -> Metrics:
    """The metrics of the role running in this context (set once by the composition root;
    tasks inherit it). Components read it at construction, never per event."""
    return _current.get()


def use(metrics: Metrics) -> None:
    _current.set(metrics)
