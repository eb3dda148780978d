"""The checker: the ledger against what the system holds, per user and event.

lost: acknowledged, but neither in its owner's inbox nor dead-lettered.
duplicated: a comment group created more than once, in the owner's change log or on a client
  (or an entry dead-lettered more than once).
unexpected: in an inbox, but never sent or only ever definitively rejected.
good_dead_lettered: dead-lettered although it was not a planted poison event.
recovered: indeterminate (timeout, 5xx) and delivered after all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from .ledger import Ledger
from .observers import (
    PushClient,
    changelog_upserts,
    dead_letters,
    inbox_group_ids,
    missing_from_clients,
)

COMMENT_PREFIX = "comment:"


@dataclass(slots=True)
class Verdict:
    acked: int = 0
    rejected: int = 0
    indeterminate: int = 0
    delivered: int = 0  # acked events found in their owner's inbox
    recovered: int = 0  # indeterminate events found in their owner's inbox
    dead_lettered: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    good_dead_lettered: list[str] = field(default_factory=list)
    ws_missing: dict[str, list[str]] = field(default_factory=dict)
    ws_disorder: list[str] = field(default_factory=list)  # a client got a change out of log order
    faults: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.good_dead_lettered
            or self.ws_missing
            or self.ws_disorder
        )

    def summary(self) -> str:
        parts = [
            f"acked={self.acked}",
            f"delivered={self.delivered}",
            f"dead_lettered={len(self.dead_lettered)}",
            f"lost={len(self.lost)}",
            f"duplicated={len(self.duplicated)}",
            f"unexpected={len(self.unexpected)}",
            f"good_dead_lettered={len(self.good_dead_lettered)}",
            f"ws_missing={sum(len(v) for v in self.ws_missing.values())}",
            f"ws_disorder={len(self.ws_disorder)}",
            f"rejected={self.rejected}",
            f"indeterminate={self.indeterminate}",
            f"recovered={self.recovered}",
            f"faults={len(self.faults)}",
        ]
        return " ".join(parts)

    def report(self) -> str:
        lines = ["verdict: " + self.summary()]
        for name in (
            "lost",
            "duplicated",
            "unexpected",
            "good_dead_lettered",
            "dead_lettered",
            "ws_disorder",
        ):
            values: list[str] = getattr(self, name)
            if values:
                lines.append(f"  {name}: {sorted(values)[:50]}")
        for client, gids in self.ws_missing.items():
            lines.append(f"  ws_missing {client}: {gids[:20]}")
        if self.faults:
            lines.append("  faults: " + ", ".join(self.faults))
        return "\n".join(lines)


async def check(
    redis: Redis,
    ledger: Ledger,
    *,
    partitions: int,
    clients: Sequence[PushClient] = (),
    scope: Collection[str] | None = None,
    skip_users: Collection[str] = (),
    poison: Collection[str] = (),
    faults: Sequence[str] = (),
) -> Verdict:
    """`scope`: the event ids judged for loss (default: all); every inbox is judged for
    unexpected and duplicated groups. `skip_users`: inboxes that cannot be read (poisoned);
    `poison`: the event ids planted to fail, the only ones that may be dead-lettered."""
    verdict = Verdict(faults=list(faults))
    users = ledger.owners() - set(skip_users)
    inboxes = {user: await inbox_group_ids(redis, user) for user in users}
    letters = await dead_letters(redis, partitions)
    dead = Counter(letter.event_id for letter in letters)
    verdict.dead_lettered = sorted(dead)
    verdict.good_dead_lettered = sorted(set(dead) - set(poison))
    verdict.duplicated += [f"dead letter {eid} x{n}" for eid, n in dead.items() if n > 1]
    for sent in ledger.events.values():
        if scope is not None and sent.event_id not in scope:
            continue
        status = sent.status
        found = sent.group_id in inboxes.get(sent.owner, set())
        if status == "acked":
            verdict.acked += 1
            if found:
                verdict.delivered += 1
            elif sent.event_id not in dead:
                verdict.lost.append(sent.event_id)
        elif status == "indeterminate":
            verdict.indeterminate += 1
            verdict.recovered += found
        else:
            verdict.rejected += 1
    for user, groups in inboxes.items():
        for gid in groups:
            origin = ledger.by_comment.get(gid.removeprefix(COMMENT_PREFIX))
            if origin is None or origin.owner != user or origin.status == "rejected":
                verdict.unexpected.append(f"{user}:{gid}")
        for gid, n in (await changelog_upserts(redis, user)).items():
            if n > 1:
                verdict.duplicated.append(f"changelog {user}:{gid} x{n}")
    for i, client in enumerate(clients):
        for gid, n in client.duplicates().items():
            verdict.duplicated.append(f"ws {client.user}#{i}:{gid} x{n}")
        verdict.ws_disorder += [f"ws {client.user}#{i}: {d}" for d in client.disorder]
    missing = await missing_from_clients(redis, clients)
    verdict.ws_missing = {client: sorted(gids) for client, gids in missing.items()}
    return verdict
