"""The load generator against the suite's Redis Cluster: its own api, worker and gateway
processes run on the cluster (jobs queue on a private redis-server), and a short steady run
reaches every online recipient exactly once."""

from __future__ import annotations

import pytest

from loadtest.cluster import ClusterLab
from loadtest.runner import run_scenario
from loadtest.scenarios import preset

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_a_steady_run_on_the_cluster_reaches_every_online_recipient_once(redis_cluster: ClusterLab) -> None:
    redis_cluster.wait_ok()
    redis_cluster.flush()
    scenario = preset("steady").with_overrides(
        {"clients": 100, "rate": 100.0, "fanout": 5, "batch": 5, "duration_s": 3.0, "drain_s": 20.0,
         "partitions": 6}
    )  # fmt: skip
    result = run_scenario(scenario, progress=False, cluster=redis_cluster)

    ledger, events = result["ledger"], result["throughput"]["events"]
    assert set(events) == {"accepted"} and events["accepted"] > 0
    assert ledger["expected"] == 5 * events["accepted"]  # everyone is online
    assert ledger["reach"] == 1.0
    assert (ledger["lost"], ledger["duplicated"], ledger["unexpected"]) == (0, 0, 0)
    assert result["fanout"]["final_lag"] == 0 and result["fanout"]["final_pending"] == 0
    assert result["memory"]["bytes_per_notification"] > 0  # summed over the masters
    assert result["processes"]["redis"]["cpu_us_per_delivery"] > 0  # every node measured
