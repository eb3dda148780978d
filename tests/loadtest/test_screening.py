"""The screening benchmark: the product's classifier beside the package's, and each rule, timed
on the labelled set (figures are not asserted: speed is measured by the benchmark, not tests)."""

from __future__ import annotations

from loadtest.screening import BATCHES, markdown, measure


def test_it_times_the_classifier_both_ways_and_every_rule() -> None:
    result = measure(repeat=1)
    assert result["texts"] > 1_000
    assert list(result["classifier_per_call"]) == [str(b) for b in BATCHES]
    for c in result["classifier_per_call"].values():
        assert c["product_ms"] > 0 and c["package_ms"] > 0
    assert {"blocklist", "targeted", "scam", "links"} <= set(result["rule_us_per_text"])
    assert "| 256 |" in markdown(result)
