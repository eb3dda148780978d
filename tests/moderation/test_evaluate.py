"""The labelled set and its committed report: the default policy meets the goal on the set, and
docs/moderation-eval.md is what the command prints today."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.evaluate import SPLITS, load_set, main, report, score

REPORT = Path(__file__).parents[2] / "docs" / "moderation-eval.md"


def test_the_set_covers_every_kind_with_evasions_and_a_held_out_part() -> None:
    samples = load_set()
    assert len(samples) >= 300
    assert {s.split for s in samples} == set(SPLITS)
    kinds = Counter(s.category for s in samples)
    assert {"targeted", "euphemism", "scam", "threat", "quoted", "names", "complaint"} <= set(kinds)
    evasions = {s.evasion for s in samples}
    assert {"", "spacing", "leetspeak", "homoglyph", "fullwidth", "stars", "acronym"} <= evasions
    assert len({s.text for s in samples}) == len(samples)


def test_the_default_policy_catches_abuse_before_delivery_and_holds_no_clean_text(
    model: ProfanityCheck,
) -> None:
    scored = score(load_set(), model)
    for split in SPLITS:  # outside_c was never read while tuning: the generalisation figure
        part = [s for s in scored if s.sample.split == split]
        abusive = [s for s in part if s.sample.abusive]
        assert sum(s.caught for s in abusive) / len(abusive) >= 22 / 23, split
    assert [s.sample.text for s in scored if not s.sample.abusive and s.caught] == []


def test_the_committed_report_is_current(model: ProfanityCheck, tmp_path: Path) -> None:
    assert report(score(load_set(), model)) == REPORT.read_text(encoding="utf-8")
    out = tmp_path / "eval.md"
    assert main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == REPORT.read_text(encoding="utf-8")
