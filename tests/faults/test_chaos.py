"""The seeded chaos run (RELIABILITY.md T-L3, scaled down) with a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chaos import run_chaos

SEED = 20261126


@pytest.mark.faults
@pytest.mark.timeout(300)
def test_chaos_run_with_a_fixed_seed_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    verdict = run_chaos(SEED, 20.0, tmp_path)
    assert len(verdict.faults) >= 5, verdict.report()
    assert verdict.acked > 0 and verdict.delivered == verdict.acked
    assert verdict.clean, verdict.report()
