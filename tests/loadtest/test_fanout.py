"""The fan-out stage: a preloaded log drained by one worker into exactly the expected inboxes."""

from __future__ import annotations

from collections import Counter

import pytest

from feeds.limits import FeedLimits
from loadtest import fanout
from loadtest.scenarios import preset
from schemas.events import type_name


def test_the_workload_makes_aggregation_work() -> None:
    events = fanout.workload(2_000, 100, seed=3, run_id="r", end_ms=1_795_675_004_000)
    assert events == fanout.workload(2_000, 100, seed=3, run_id="r", end_ms=1_795_675_004_000)
    kinds = Counter(type_name(e) for e in events)
    assert set(kinds) == {"like", "follow", "comment"} and kinds["like"] > kinds["comment"]
    groups = fanout.expected_groups(events, FeedLimits())
    assert set(groups) <= {f"u{i}" for i in range(100)}
    sizes = [len(items) for user in groups.values() for items in user.values()]
    assert 0.9 * len(events) < sum(sizes) <= len(events)  # an item per event; a repeated like is one
    assert max(sizes) > 5  # likes of one post and new followers land in shared groups
    assert all(len(user) <= FeedLimits().max_groups for user in groups.values())


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_redis_server")
def test_one_worker_drains_the_preloaded_log_into_the_expected_inboxes() -> None:
    scenario = preset("fanout").with_overrides({"events": 3_000})
    result = fanout.run(scenario, extra_env={}, progress=False)

    assert result["workload"]["events"] == 3_000 and result["workload"]["users"] == 150
    assert result["fanout"] == {"final_lag": 0, "final_pending": 0, "read": 3_000}
    assert result["throughput"]["applied_eps"] > 0
    inbox = result["inbox"]
    assert inbox["groups_found"] == inbox["groups_expected"] == result["workload"]["groups_expected"]
    assert (inbox["missing"], inbox["unexpected"], inbox["miscounted"]) == (0, 0, 0)
    assert inbox["groups_expected"] < 3_000  # aggregation merged events into groups
    assert result["processes"]["worker"]["cpu_s"] > 0 and result["processes"]["redis"]["cpu_s"] > 0
    commands = result["redis_commands"]  # the drain's own: the sampler's XINFO is left out
    assert commands["xreadgroup"]["calls"] > 0 and commands["evalsha"]["us_per_event"] > 0
    assert "xinfo|groups" not in commands and "info" not in commands
    assert fanout.passed(result) and result["notes"] == []
    assert "Result: PASS" in fanout.markdown(result) and "| evalsha |" in fanout.markdown(result)


def test_pinning_is_the_fanout_stages_alone() -> None:
    assert (
        preset("fanout").with_overrides({"events": 10, "redis_cpus": "0", "worker_cpus": "1"}).problems()
        == []
    )
    steady = preset("steady").with_overrides({"worker_cpus": "1"})
    assert steady.problems() == ["redis_cpus and worker_cpus pin the fanout stage's processes only"]


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_redis_server")
def test_a_pinned_run_reports_its_pinning_and_cpu_per_event() -> None:
    scenario = preset("fanout").with_overrides({"events": 1_000, "redis_cpus": "0", "worker_cpus": "0"})
    result = fanout.run(scenario, extra_env={}, progress=False)

    assert fanout.passed(result)
    assert (result["scenario"]["redis_cpus"], result["scenario"]["worker_cpus"]) == ("0", "0")
    assert "redis on 0, worker on 0" in fanout.markdown(result)
    per_event = result["cpu_us_per_event"]
    assert set(per_event) == {"worker", "redis"} and all(
        us is not None and us > 0 for us in per_event.values()
    )
