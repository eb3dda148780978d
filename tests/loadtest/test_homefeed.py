"""The home-feed stage (`celebrity --feed`) at a tiny size: every pushed follower reached, every
read-merged post found by a feed read, and the report written."""

from __future__ import annotations

import pytest

from loadtest import homefeed
from loadtest.scenarios import preset


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("needs_redis_server")
def test_a_small_celebrity_reaches_every_follower_pushed_and_merged() -> None:
    knobs = {"users": 60, "clients": 5, "rate": 50.0, "duration_s": 1.0, "events": 2, "fanout": 3}
    result = homefeed.run(preset("celebrity", feed=True).with_overrides(knobs), extra_env={}, progress=False)

    pushed, merged = result["phases"]["pushed"], result["phases"]["merged"]
    assert pushed["followers_reached"] == [60, 60]
    assert all(ms >= 0 for ms in pushed["last_follower_ms"])
    assert all(ms is not None for ms in merged["first_read_ms"])
    assert result["phases"]["background"]["background_ms"]["count"] > 0
    assert result["reads"]["merged_per_read"] == 3 and result["reads"]["shown"] == 20
    assert homefeed.passed(result)
    assert "Result: PASS" in homefeed.markdown(result)
