"""The ingest stage: the API alone, then the same load against the stubbed append, and their ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import ingest, report
from loadtest.scenarios import preset

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60), pytest.mark.usefixtures("needs_redis_server")]


def test_single_event_posts_against_the_api_and_the_stubbed_append(tmp_path: Path) -> None:
    scenario = preset("ingest").with_overrides({"batch": 1, "duration_s": 1.5, "users": 200})
    result = ingest.run(scenario, extra_env={}, progress=False)

    assert result["scenario"]["concurrency"] == 64  # the single-event default
    assert list(result["phases"]) == ["notifier", "append stubbed"]
    for phase in result["phases"].values():
        assert set(phase["requests"]) == {"202"}  # never a 503: the backlog limit is lifted
        assert phase["accepted_eps"] > 100
        assert phase["events"]["accepted"] == phase["requests"]["202"]  # one event a request
        assert phase["api_cpu_us_per_event"] > 0
        assert phase["latency_ms"]["request_round_trip"]["count"] == phase["requests"]["202"]
    ours, stubbed = result["phases"]["notifier"], result["phases"]["append stubbed"]
    assert result["ratio"] == pytest.approx(ours["accepted_eps"] / stubbed["accepted_eps"], abs=1e-3)
    assert result["cpu_ratio"] > 0
    assert result["log_entries"] == ours["events"]["accepted"]  # the stub appended nothing
    assert ingest.passed(result)

    paths = report.write(result, tmp_path, "ingest", render=ingest.markdown, draw=None)
    assert [p.suffix for p in paths] == [".json", ".md"]
    assert "notifier ÷ append stubbed" in paths[1].read_text()
