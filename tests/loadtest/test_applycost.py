"""The apply-cost harness on a real redis-server: it counts what the scripts ran, per item."""

from __future__ import annotations

import pytest

from loadtest.applycost import measure

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def test_it_counts_the_scripts_commands_per_applied_item() -> None:
    offline = await measure(200, 0, cachegrind=False)
    online = await measure(200, 100, cachegrind=False)

    assert offline["items"] == online["items"] == 200  # one recipient per event
    # every item reads its register and state, checks the log, appends a change, writes back
    assert 5 < offline["commands_per_item"] < 20
    # online, every change is also published
    assert online["commands_per_item"] >= offline["commands_per_item"] + 1
    assert offline["cpu_us_per_item"] > 0
