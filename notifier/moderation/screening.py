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

from feeds.scripts import ask
from notifier.runtime import metrics, tracing
from notifier.runtime.eventlog import LoggedEvent
from notifier.runtime.settings import ModerationSettings, Settings
from schemas.events import Comment, Follow, Like, Mention

from .components import Components
from .content import ContentIndex
from .normalize import canonical
from .policy import Action, Policy
from .queue import REPORT
from .records import text_of
from .rules import Rule, Signals, Subject, TextClassifier, Verdict
from .ruleset import build_rules, evaluate
from .velocity import ActivityCounters, Observation

log = logging.getLogger(__name__)

_CREATES = (Like, Follow, Comment, Mention)  # undo events (unlike, deletes) always pass
INLINE_TEXT_CHARS = 2_000  # a batch with at most this much text is screened on the event loop


def _observed(logged: LoggedEvent, content: ContentIndex) -> Observation:
    return Observation(
        position=content.position(logged),
        first_position=content.first_position(logged),
        actor=logged.event.actor,
        accepted_ms=logged.accepted_ms,
        canonical_text=canonical(text_of(logged.event)).text,
        targets=_targets(logged),
    )


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
            parts.content, duplicate_window_ms=settings.duplicate_window_s * 1000
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
        # One round trip for what the batch needs to know: the bans of its creations' actors
        # (undos and deletions always pass), which of its comments and mentions were screened
        # before (a redelivery follows its recorded decision), and the rules' counters, counting
        # each comment and mention (idempotent by position: a redelivery counts once; a banned
        # actor's count too, though their events are dropped).
        texts = [e for e in events if isinstance(e.event, Comment | Mention)]
        bans, known, signals = await ask(
            self._parts.ledger.redis,
            self._parts.bans.standing_query(
                sorted({e.event.actor for e in events if isinstance(e.event, _CREATES)})
            ),
            self._parts.queue.known([t.event.id for t in texts]),
            self._counters.observe([_observed(t, self._parts.content) for t in texts]),
        )
        signal_of = {id(t): s for t, s in zip(texts, signals, strict=True)}
        passed: list[LoggedEvent] = []
        fresh: list[tuple[LoggedEvent, Signals]] = []
        dropped: list[LoggedEvent] = []
        colliding: set[str] = set()
        banned_since: list[tuple[LoggedEvent, Signals, bool]] = []
        now = self._parts.ledger.clock()
        for logged in events:
            standing = bans.get(logged.event.actor)
            recorded = known.get(logged.event.id)
            if (
                standing is not None
                and standing.covers(logged.accepted_ms)
                and isinstance(logged.event, _CREATES)
            ):
                dropped.append(logged)
            elif not isinstance(logged.event, Comment | Mention):
                passed.append(logged)
            elif recorded is None:
                if standing is not None and standing.ban is not None and standing.ban.covers(now):
                    # sent before a ban now in force, screened after it: what the ban does to
                    # the actor's items (rejects the open ones; with its content removed, all)
                    # it does to this one, which was not an item yet
                    banned_since.append((logged, signal_of[id(logged)], standing.ban.remove_content))
                    continue
                fresh.append((logged, signal_of[id(logged)]))
            elif recorded[2] == logged.event.actor:  # screened before: its decision stands
                if _follows_decision(recorded[0], recorded[1]):
                    passed.append(logged)
            else:  # another actor's event under an id moderation has a record of
                fresh.append((logged, signal_of[id(logged)]))
                colliding.add(logged.event.id)
        if banned_since:
            verdicts = evaluate(self._rules, [Subject(text_of(t.event), sig) for t, sig, _ in banned_since])
            for (logged, signal, removed), found in zip(banned_since, verdicts, strict=True):
                if removed or self._policy.decide(found) is not Action.DELIVER:
                    dropped.append(logged)
                    # recorded as rejected, as the ban rejects: a replay after the ban is lifted
                    # follows that decision (the ban's windows start after this event)
                    banned = Verdict("ban", "sent before a ban, screened after it", 1.0)
                    position = self._parts.content.position(logged)
                    await self._parts.queue.record(logged.event, position, Action.DROP, [*found, banned])
                else:
                    fresh.append((logged, signal))
        await self._parts.bans.record_dropped(dropped)
        self.stats.banned += len(dropped)
        delivered = await self._screen_texts(fresh, len(known), colliding)
        out = passed + delivered
        await self._parts.content.remember(out)  # its comments and mentions
        return out

    async def _screen_texts(
        self, fresh: Sequence[tuple[LoggedEvent, Signals]], known: int, colliding: set[str]
    ) -> list[LoggedEvent]:
        """Run the rules on `fresh`; record what the policy does not simply deliver. An event in
        `colliding` reuses the id of another actor's recorded event (ingest deduplicates ids per
        partition, and the two actors' partitions differ): its own record cannot be kept under
        that id, so it is delivered only if the rules pass it, and otherwise not delivered,
        logged and counted (`notifier_moderation_id_collisions_total`), never taken for the other."""
        if not fresh:  # all screened before (a redelivery): no rules
            return []
        queue = self._parts.queue
        traced = self._traced  # a span per screened text, child of its append
        spans = [traced.span("moderation.screen", t.trace or None) for t, _ in fresh] if traced else []
        subjects = [Subject(text_of(t.event), s) for t, s in fresh]
        # the rules are pure and cost ~0.1 ms a text (the classifier ~0.3 ms a batch): a batch of
        # little text runs them on the loop, more goes to a thread so the loop is not held long
        if sum(len(s.text) for s in subjects) <= INLINE_TEXT_CHARS:
            verdicts = evaluate(self._rules, subjects)
        else:
            verdicts = await anyio.to_thread.run_sync(evaluate, self._rules, subjects)
        out: list[LoggedEvent] = []
        recorded = 0
        for (logged, _), found in zip(fresh, verdicts, strict=True):
            action = self._policy.decide(found)
            if action is not Action.DELIVER and logged.event.id in colliding:
                log.warning(
                    "event not delivered: id %r is another actor's moderated event; actor=%s action=%s",
                    logged.event.id,
                    logged.event.actor,
                    action.value,
                )
                self._metrics.moderation_id_collisions.inc()
                continue
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
            log.debug("screened texts=%d recorded=%d known=%d", len(fresh), recorded, known)
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
