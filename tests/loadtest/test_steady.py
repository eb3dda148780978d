"""A short steady run through the generator's own local stack: every notification arrives once."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import report
from loadtest.metrics import family
from loadtest.runner import run_scenario
from loadtest.scenarios import preset
from schemas import keys

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90), pytest.mark.usefixtures("needs_redis_server")]


def test_steady_run_reaches_every_online_recipient_exactly_once(tmp_path: Path) -> None:
    scenario = preset("steady").with_overrides(
        {"clients": 300, "rate": 150.0, "fanout": 5, "batch": 5, "duration_s": 4.0, "drain_s": 20.0}
    )
    result = run_scenario(scenario, progress=False)

    ledger, events = result["ledger"], result["throughput"]["events"]
    assert set(events) == {"accepted"} and 590 <= events["accepted"] <= 610  # 150/s for 4 s
    assert ledger["expected"] == 5 * events["accepted"]  # everyone is online
    assert ledger["reach"] == 1.0
    assert (ledger["lost"], ledger["duplicated"], ledger["unexpected"]) == (0, 0, 0)
    assert result["clients"]["connected_at_start"] == 300
    latency = result["latency_ms"]["send_to_receive"]
    assert latency["count"] == ledger["expected"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert result["fanout"]["final_lag"] == 0 and result["fanout"]["final_pending"] == 0
    memory = result["memory"]
    assert memory["bytes_per_notification"] > 0
    assert memory["by_kind"]["inbox"]["bytes"] > 0 and memory["by_kind"]["event log"]["bytes"] > 0
    # no key with a TTL per event or per actor is left (the idempotency window and the content
    # index are fields of shared hashes): the expiry table barely grows
    assert 0 <= memory["by_kind"]["expiry table"]["bytes"] < memory["by_kind"]["event log"]["bytes"] / 10
    idem, modc = (family(k.encode()) for k in (keys.idempotency(0, "e"), keys.mod_content("a")))
    assert memory["families"][idem]["bytes"] > 0 and memory["families"][modc]["bytes"] > 0
    by_fill = memory["inbox_by_fill"].values()
    assert sum(row["groups"] for row in by_fill) == memory["notifications_stored"]
    assert sum(row["users"] for row in by_fill) == 300
    in_keys = {
        kind: row for kind, row in memory["by_kind"].items() if kind not in {"expiry table", "not in any key"}
    }
    assert sum(row["bytes"] for row in memory["families"].values()) == sum(
        row["bytes"] for row in in_keys.values()
    )
    commands = result["redis_commands"]  # INFO commandstats between producing and drained
    assert commands["evalsha"]["us_per_event"] > 0 and commands["xadd"]["per_event"] >= 1  # its append
    assert "xinfo|groups" not in commands and "info" not in commands  # the sampler's own

    paths = report.write(result, tmp_path, "steady")
    assert [p.suffix for p in paths] == [".json", ".md", ".png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert "Ledger: PASS" in paths[1].read_text() and "| evalsha |" in paths[1].read_text()
