"""Readiness: the checks run at once, so a probe waits one CHECK_TIMEOUT_S at most, whatever
their number (a frozen Redis made a worker's /readyz take one timeout per check)."""

from __future__ import annotations

import anyio
import pytest

from notifier.runtime import health
from notifier.runtime.health import Health


class _NoRedis:
    async def ping(self) -> bool:
        return True


@pytest.mark.anyio
async def test_checks_run_at_once_and_each_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.5)
    started = {"a": anyio.Event(), "b": anyio.Event()}

    def waiting_for(mine: str, theirs: str) -> health.Check:
        async def check() -> str | None:  # one after the other, the first would time out
            started[mine].set()
            await started[theirs].wait()
            return None

        return check

    async def frozen() -> str | None:
        await anyio.sleep_forever()
        return None

    async def failing() -> str | None:
        raise ConnectionError("refused")

    ready = Health(_NoRedis())  # a Redis as far as the ping check goes
    ready.started = True
    ready.add("a", waiting_for("a", "b"))
    ready.add("b", waiting_for("b", "a"))
    assert await ready.reasons() == []
    ready.add("frozen", frozen)
    ready.add("failing", failing)
    assert await ready.reasons() == ["frozen: no answer within 0.5s", "failing: ConnectionError: refused"]
