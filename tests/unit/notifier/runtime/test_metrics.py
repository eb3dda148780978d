"""The lock-free metric kinds render as Prometheus reads them (cumulative buckets, _total,
labelled children), a reason's child appears once used, and disabled metrics are no-ops."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier.runtime.metrics import Metrics
from schemas.errors import Reason


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = anyio.run(metrics.render).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_and_histograms_render_for_prometheus() -> None:
    metrics = Metrics()
    metrics.ingest_events_accepted.inc(3)
    metrics.ingest_events_rejected[Reason.INVALID].inc()
    for seconds in (0.0004, 0.003, 0.003, 20.0):
        metrics.push_seconds.observe(seconds)
    got = samples(metrics)
    assert got[("notifier_ingest_events_total", (("reason", ""), ("result", "accepted")))] == 3
    assert got[("notifier_ingest_events_total", (("reason", "invalid"), ("result", "rejected")))] == 1
    assert ("notifier_ingest_events_total", (("reason", "forbidden"), ("result", "rejected"))) not in got
    bucket = "notifier_gateway_push_latency_seconds_bucket"
    assert got[(bucket, (("le", "0.0005"),))] == 1
    assert got[(bucket, (("le", "0.005"),))] == 3
    assert got[(bucket, (("le", "10.0"),))] == 3
    assert got[(bucket, (("le", "+Inf"),))] == 4
    assert got[("notifier_gateway_push_latency_seconds_count", ())] == 4
    assert got[("notifier_gateway_push_latency_seconds_sum", ())] == pytest.approx(20.0064)


def test_redis_components_drop_their_number() -> None:
    metrics = Metrics()
    metrics.redis_errors("fanout partition 3").inc()
    metrics.redis_errors("fanout partition 7").inc()
    assert samples(metrics)[("notifier_redis_errors_total", (("component", "fanout partition"),))] == 2


def test_disabled_metrics_record_nothing() -> None:
    metrics = Metrics(enabled=False)
    metrics.ingest_events_accepted.inc()
    metrics.push_seconds.observe(1.0)
    metrics.closes_by_reason[Reason.SLOW_CONSUMER].inc()
    assert samples(metrics) == {}


def test_disabled_metrics_keep_no_sampler_or_collector() -> None:
    ran: list[str] = []

    async def sampler() -> None:
        ran.append("sampler")

    metrics = Metrics(enabled=False)
    metrics.add_sampler(sampler)
    metrics.add_collector(lambda: iter(()))
    assert samples(metrics) == {} and ran == []


def test_samplers_run_at_once_so_a_frozen_redis_costs_one_timeout() -> None:
    """Each sampler waits for the other to start: one after the other, the first would time out."""
    started = {"a": anyio.Event(), "b": anyio.Event()}
    ran: list[str] = []

    def sampler(mine: str, theirs: str) -> Callable[[], Awaitable[None]]:
        async def sample() -> None:
            started[mine].set()
            with anyio.fail_after(5):
                await started[theirs].wait()
            ran.append(mine)

        return sample

    metrics = Metrics(enabled=True)
    metrics.add_sampler(sampler("a", "b"))
    metrics.add_sampler(sampler("b", "a"))
    anyio.run(metrics.render)
    assert sorted(ran) == ["a", "b"]


def test_a_failed_sampler_leaves_its_gauges_unknown_not_stale() -> None:
    """Redis away: the lag is not the last value seen (an alert on it would stay green)."""
    metrics = Metrics(enabled=True)
    failing = [False]

    async def sample() -> None:
        if failing[0]:
            raise ConnectionError("redis away")
        metrics.lag.labels("0").set(7)
        metrics.outbox.set(3)

    metrics.add_sampler(sample, metrics.lag, metrics.outbox)
    seen = samples(metrics)
    assert seen[("notifier_fanout_lag_entries", (("partition", "0"),))] == 7
    assert seen[("notifier_moderation_outbox_effects", ())] == 3
    failing[0] = True
    seen = samples(metrics)
    assert not [k for k in seen if k[0] == "notifier_fanout_lag_entries"]
    assert math.isnan(seen[("notifier_moderation_outbox_effects", ())])
