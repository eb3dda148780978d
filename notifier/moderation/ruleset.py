"""The rules the fan-out runs, built from the settings, and running them over a batch."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.runtime.settings import ModerationSettings

from .rules import (
    BUILTIN_BLOCKLIST,
    BlocklistRule,
    ClassifierRule,
    DuplicateRule,
    LinkRule,
    Rule,
    Subject,
    TextClassifier,
    VelocityRule,
    Verdict,
)
from .scam import ScamRule
from .targeted import TargetedRule


def build_rules(settings: ModerationSettings, model: TextClassifier | None) -> list[Rule]:
    entries = (*BUILTIN_BLOCKLIST, *settings.blocklist) if settings.builtin_blocklist else settings.blocklist
    rules: list[Rule] = [
        BlocklistRule(entries),
        TargetedRule(model),
        ScamRule(),
        LinkRule(max_links=settings.max_links, blocked_domains=settings.blocked_domains),
        VelocityRule(settings.velocity_per_min),
        DuplicateRule(settings.duplicate_targets),
    ]
    if model is not None:
        rules.append(ClassifierRule(model))
    return rules


def evaluate(rules: Sequence[Rule], subjects: Sequence[Subject]) -> list[list[Verdict]]:
    """Every rule's verdicts on every subject, in subject order."""
    out: list[list[Verdict]] = [[] for _ in subjects]
    for rule in rules:
        for found, verdict in zip(out, rule.check(subjects), strict=True):
            if verdict is not None:
                found.append(verdict)
    return out
