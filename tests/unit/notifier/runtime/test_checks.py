"""The one rule for a Redis that may evict keys, shared by the start's checks and ingest's
pressure (notifier/api/pressure.py)."""

from __future__ import annotations

import pytest

from notifier.runtime.checks import evicts


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", b"allkeys-lfu", "noeviction-ish"])
def test_every_policy_but_noeviction_evicts(policy: str | bytes) -> None:
    assert evicts(policy)


@pytest.mark.parametrize("policy", ["noeviction", b"noeviction", None])
def test_noeviction_or_an_untold_policy_does_not(policy: str | bytes | None) -> None:
    assert not evicts(policy)
