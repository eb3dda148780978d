"""Latency figures from the checked ledger: end to end from the POST's send time (and from the
event's scheduled time, which also counts the generator's own lag), per run and per second."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from .ledger import Verdict
from .metrics import new_histogram, summary_ms
from .producers import Meter


def _histogram(ends: Any, starts: Any) -> tuple[HdrHistogram, int]:
    h = new_histogram()
    negative = 0
    for end, start in zip(ends, starts, strict=True):
        us = (end - start) // 1000
        if us < 1:
            negative += us < 0
            us = 1
        h.record_value(us)
    return h, negative


def latency_section(verdict: Verdict, meter: Meter, sent_by: str = "post") -> dict[str, Any]:
    """`sent_by` names the source's request (a `post`, or a `publish` pipeline)."""
    send, _ = _histogram(verdict.received_ns, verdict.sent_ns)
    scheduled, _ = _histogram(verdict.received_ns, verdict.scheduled_ns)
    acked, before_ack = _histogram(verdict.received_ns, verdict.acked_ns)
    return {
        "send_to_receive": summary_ms(send),
        "schedule_to_receive": summary_ms(scheduled),
        "ack_to_receive": {**summary_ms(acked), "received_before_ack": before_ack},
        f"{sent_by}_round_trip": summary_ms(meter.rtt_us),
        "schedule_lag": summary_ms(meter.schedule_lag_us),
    }


def timeline_latency(verdict: Verdict, t0_ns: int) -> list[dict[str, float]]:
    """Send→receive percentiles of the notifications received in each second of the run."""
    buckets: dict[int, list[int]] = {}
    for end, start in zip(verdict.received_ns, verdict.sent_ns, strict=True):
        buckets.setdefault(int((end - t0_ns) // 1_000_000_000), []).append(end - start)
    rows = []
    for second in sorted(buckets):
        values = sorted(buckets[second])
        n = len(values)
        rows.append(
            {
                "t": second + 1,
                "n": n,
                "p50_ms": values[n // 2] / 1e6,
                "p99_ms": values[min(n - 1, int(n * 0.99))] / 1e6,
                "max_ms": values[-1] / 1e6,
            }
        )
    return rows
