"""The live line on stderr: rewritten in place on a terminal, one line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Final

from hdrh.histogram import HdrHistogram

PLAIN_EVERY_S: Final = 5.0


class Progress:
    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last_plain = 0.0
        self._width = 0

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(text))
            sys.stderr.write("\r" + text + " " * pad)
            sys.stderr.flush()
            self._width = len(text)
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def tick(self, row: dict[str, Any], schedule_lag_us: HdrHistogram) -> None:
        lag = row.get("lag")
        backlog = "" if lag is None else f" backlog={lag}+{row.get('pending', 0)}"
        p50, p99 = row.get("p50_ms"), row.get("p99_ms")
        latency = "" if p50 is None else f" latency p50={p50:.1f}ms p99={p99:.1f}ms"
        sched = schedule_lag_us.get_value_at_percentile(99) / 1000 if schedule_lag_us.get_total_count() else 0
        self.line(
            f"t={row['t']:5.1f}s offered={row['offered_eps']:.0f}/s accepted={row['accepted_eps']:.0f}/s "
            f"delivered={row['delivered_nps']:.0f}/s{backlog}{latency} "
            f"clients={row['connected']} sched_lag_p99={sched:.1f}ms"
        )

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._width = 0
