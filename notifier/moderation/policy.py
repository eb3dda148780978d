"""Verdicts → one action per event, by per-rule score thresholds: deliver, flag (deliver and
queue for review), hold (queue; deliver only once approved) or drop (record, never deliver)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from notifier.runtime.settings import ModerationSettings, Threshold

from .rules import Verdict


class Action(StrEnum):
    DELIVER = "deliver"
    FLAG = "flag"
    HOLD = "hold"
    DROP = "drop"


_SEVERITY: Final = {Action.DELIVER: 0, Action.FLAG: 1, Action.HOLD: 2, Action.DROP: 3}
NEVER: Final = 2.0  # scores are at most 1

# The default holds high-confidence abuse (severe blocklist terms, blocked domains, twice the
# rate or duplicate limits) and flags the rest. The classifier only flags: it measures
# profanity, not abuse, and scores "fucking awesome" as high as an insult.
DEFAULTS: Final[dict[str, Threshold]] = {
    "blocklist": Threshold("blocklist", flag=0.5, hold=0.9, drop=NEVER),
    "targeted": Threshold("targeted", flag=0.5, hold=0.9, drop=NEVER),
    "scam": Threshold("scam", flag=0.5, hold=0.9, drop=NEVER),
    "links": Threshold("links", flag=0.5, hold=0.9, drop=NEVER),
    "velocity": Threshold("velocity", flag=0.5, hold=0.9, drop=NEVER),
    "duplicate": Threshold("duplicate", flag=0.5, hold=0.9, drop=NEVER),
    "classifier": Threshold("classifier", flag=0.8, hold=NEVER, drop=NEVER),
}
_FALLBACK: Final = Threshold("*", flag=0.5, hold=0.9, drop=NEVER)


def problems(settings: ModerationSettings) -> list[str]:
    """Threshold overrides naming no rule: a typo would silently leave the rule at its default."""
    out = []
    for override in settings.thresholds:
        if override.rule not in DEFAULTS:
            close = difflib.get_close_matches(override.rule, DEFAULTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (rules: {', '.join(DEFAULTS)})"
            out.append(f"NOTIFIER_MODERATION_THRESHOLDS: no rule {override.rule!r}{hint}")
    return out


def _merge(base: Threshold, override: Threshold) -> Threshold:
    given = {k: v for k, v in dataclasses.asdict(override).items() if v is not None and k != "rule"}
    return dataclasses.replace(base, **given)


class Policy:
    def __init__(self, settings: ModerationSettings) -> None:
        self._limits = dict(DEFAULTS)
        for override in settings.thresholds:
            self._limits[override.rule] = _merge(self._limits.get(override.rule, _FALLBACK), override)

    def action_for(self, verdict: Verdict) -> Action:
        limit = self._limits.get(verdict.rule, _FALLBACK)
        if verdict.score >= (limit.drop if limit.drop is not None else NEVER):
            return Action.DROP
        if verdict.score >= (limit.hold if limit.hold is not None else NEVER):
            return Action.HOLD
        if verdict.score >= (limit.flag if limit.flag is not None else NEVER):
            return Action.FLAG
        return Action.DELIVER

    def decide(self, verdicts: Sequence[Verdict]) -> Action:
        """The most severe action any verdict calls for."""
        actions = [self.action_for(v) for v in verdicts]
        return max(actions, key=_SEVERITY.__getitem__, default=Action.DELIVER)
