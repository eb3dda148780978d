"""Screening in the fan-out: which events of a batch are applied now. Comments and mentions
pass the rules; the policy flags (apply and queue), holds (queue only) or drops (record only);
banned or suspended actors' events are dropped and recorded. An event already recorded follows
its decision, so a redelivery, a reclaim or a replay of the log never undoes a moderator's
verdict. What is let through is indexed for reports and ban-and-remove."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from redis.asyncio import Redis

from notifier.runtime import metrics, tracing
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import ModerationSettings, Settings
from schemas.events import Comment, Follow, Like, Mention

from .components import Components
from .normalize import canonical
from .policy import Action, Policy
from .queue import REPORT
from .records import text_of
from .rules import Rule, Subject, TextClassifier
from .ruleset import build_rules, evaluate
from .velocity import ActivityCounters, Observation

log = logging.getLogger(__name__)

_CREATES = (Like, Follow, Comment, Mention)  # undo events (unlike, deletes) always pass


@dataclass(slots=True)
class ScreenStats:
    screened: int = 0
    flagged: int = 0
    held: int = 0
    dropped: int = 0
    banned: int = 0


def _targets(logged: LoggedEvent) -> tuple[str, ...]:
    event = logged.event
    if isinstance(event, Comment):
        return (f"post:{event.post}",)
    if isinstance(event, Mention):
        return tuple(f"user:{u}" for u in dict.fromkeys(event.users))
    return ()


class Screener:
    """Implements the fan-out's `Screen` port. Everything it records is keyed by event id, so
    screening the same batch twice records nothing twice."""

    def __init__(
        self,
        parts: Components,
        settings: ModerationSettings,
        *,
        model: TextClassifier | None,
        rules: Sequence[Rule] | None = None,
    ) -> None:
        self._settings = settings
        self._rules = list(rules) if rules is not None else build_rules(settings, model)
        self._policy = Policy(settings)
        self._parts = parts
        self._counters = ActivityCounters(
            parts.ledger.redis, duplicate_window_ms=settings.duplicate_window_s * 1000
        )
        self.stats = ScreenStats()
        self._metrics = metrics.current()
        self._traced = tracing.current()

    @classmethod
    def build(cls, redis: Redis, settings: Settings, *, model: TextClassifier | None) -> Screener:
        return cls(Components.build(redis, settings), settings.moderation, model=model)

    async def screen(self, events: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        if not self._settings.enabled or not events:
            return list(events)
        # only creations can be dropped for a ban: undos and deletions are not even looked up
        bans = await self._parts.bans.of(
            sorted({e.event.actor for e in events if isinstance(e.event, _CREATES)})
        )
        passed: list[LoggedEvent] = []
        texts: list[LoggedEvent] = []
        dropped: list[LoggedEvent] = []
        for logged in events:
            ban = bans.get(logged.event.actor)
            if ban is not None and ban.covers(logged.accepted_ms) and isinstance(logged.event, _CREATES):
                dropped.append(logged)
            elif isinstance(logged.event, Comment | Mention):
                texts.append(logged)
            else:
                passed.append(logged)
        await self._parts.bans.record_dropped(dropped)
        self.stats.banned += len(dropped)
        delivered = await self._screen_texts(texts)
        await self._parts.content.remember(delivered)
        return passed + delivered

    async def _screen_texts(self, texts: Sequence[LoggedEvent]) -> list[LoggedEvent]:
        if not texts:
            return []
        queue = self._parts.queue
        known = await queue.known([t.event.id for t in texts])
        fresh = [t for t in texts if t.event.id not in known]
        out = [t for t in texts if t.event.id in known and _follows_decision(*known[t.event.id])]
        if not fresh:  # all screened before (a redelivery): no counters, no rules
            return out
        signals = await self._counters.observe(
            [
                Observation(
                    event_id=t.event.id,
                    actor=t.event.actor,
                    accepted_ms=t.accepted_ms,
                    canonical_text=canonical(text_of(t.event)).text,
                    targets=_targets(t),
                )
                for t in fresh
            ]
        )
        traced = self._traced  # a span per screened text, child of its append
        spans = [traced.span("moderation.screen", t.trace or None) for t in fresh] if traced else []
        subjects = [Subject(text_of(t.event), s) for t, s in zip(fresh, signals, strict=True)]
        # the rules are pure but cost ~0.1 ms a text and the classifier ~0.3 ms a batch: off the loop
        verdicts = await anyio.to_thread.run_sync(evaluate, self._rules, subjects)
        recorded = 0
        for logged, found in zip(fresh, verdicts, strict=True):
            action = self._policy.decide(found)
            if action is not Action.DELIVER:
                position = self._parts.content.position(logged)
                recorded += await queue.record(logged.event, position, action, found)
            if action in {Action.DELIVER, Action.FLAG}:
                out.append(logged)
            self._count(action)
            rule = next((v.rule for v in found if self._policy.action_for(v) is action), "none")
            self._metrics.moderation_actions.labels(rule, action.value).inc()
        for span, found in zip(spans, verdicts, strict=False):  # no spans when tracing is off
            span.set_attribute("notifier.action", self._policy.decide(found).value)
            span.set_attribute("notifier.rules", [v.rule for v in found])
            span.end()
        if recorded:
            log.info("screened texts=%d recorded=%d known=%d", len(fresh), recorded, len(known))
        return out

    def _count(self, action: Action) -> None:
        self.stats.screened += 1
        if action is Action.FLAG:
            self.stats.flagged += 1
        elif action is Action.HOLD:
            self.stats.held += 1
        elif action is Action.DROP:
            self.stats.dropped += 1


def _follows_decision(state: str, action: str) -> bool:
    """Apply an already-recorded event again only if it was delivered or approved (idempotent):
    approved, or open after the policy flagged it or people reported it."""
    return state == "approved" or (state == "pending" and action in {Action.FLAG.value, REPORT})
