"""Operator commands: `replay` the log into the views, inspect and mend the dead letters."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import orjson

from notifier.explain import Explainer
from notifier.fanout.deadletter import LOST, DeadLetters, parse_ref
from notifier.fanout.replay import replay
from notifier.moderation.classifier import ProfanityCheck
from notifier.moderation.screening import Screener
from notifier.runtime.redis import open_redis
from notifier.runtime.settings import Settings

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rebuild = sub.add_parser("replay", help="rebuild the views from the event log (idempotent)")
    rebuild.add_argument(
        "--fresh", action="store_true", help="delete every derived view first (clients refetch)"
    )
    dlq = sub.add_parser("dlq", help="dead letters: list | show REF | redrive REF | drop REF")
    verbs = dlq.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list")
    listing.add_argument("--count", type=int, default=100, help="per partition")
    for verb in ("show", "redrive"):
        verbs.add_parser(verb).add_argument("ref", help="PARTITION/ID as listed")
    drop = verbs.add_parser("drop")
    drop.add_argument("ref")
    drop.add_argument("--reason", required=True, help="kept with the dropped entry")
    explain = sub.add_parser("explain", help="where an event is: log, fan-out, moderation, each recipient")
    explain.add_argument("event_id")
    explain.add_argument("--user", help="only this recipient (and why they are not one)")


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    async with open_redis(settings.redis, jobs_url=settings.jobs.redis_url, allow_fake=False) as handle:
        log.info("redis=%s", handle.description)
        redis = handle.client
        if args.command == "replay":
            model = ProfanityCheck() if settings.moderation.classifier else None
            stats = await replay(
                redis,
                partitions=settings.ingest.partitions,
                limits=settings.feeds,
                fresh=args.fresh,
                screen=Screener.build(redis, settings, model=model),
            )
            _print(dataclasses.asdict(stats))
            return 1 if stats.failed else 0
        if args.command == "explain":
            explained = await Explainer(redis, settings).explain(args.event_id, args.user)
            if explained is None:
                _print({"event_id": args.event_id, "error": "not_found"})
                return 1
            print(explained.to_json().decode())
            return 0
        letters = DeadLetters(redis)
        if args.verb != "list":
            try:
                parse_ref(args.ref)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 2
        if args.verb == "list":
            for letter in await letters.entries(settings.ingest.partitions, args.count):
                _print({"ref": letter.ref, **letter.fields})
            return 0
        if args.verb == "show":
            found = await letters.show(args.ref)
            if found is None:
                return _missing(args.ref)
            _print({"ref": found.ref, **found.fields})
            return 0
        if args.verb == "redrive":
            position = await letters.redrive(args.ref)
            if position is None and await letters.show(args.ref) is not None:
                _print(
                    {"ref": args.ref, "error": "no_event", "detail": f"{LOST}: nothing to redrive; drop it"}
                )
                return 1
            if position is None:
                return _missing(args.ref)
            _print({"ref": args.ref, "redriven_to": position})
            return 0
        dropped = await letters.drop(args.ref, args.reason)
        if not dropped:
            return _missing(args.ref)
        _print({"ref": args.ref, "dropped": True, "reason": args.reason})
        return 0


def _print(value: object) -> None:
    print(orjson.dumps(value).decode())


def _missing(ref: str) -> int:
    _print({"ref": ref, "error": "not_found"})
    return 1
