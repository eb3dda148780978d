"""The client-side history: every comment event POSTed to ingest and what ingest answered
(acknowledged, rejected, or indeterminate), and the paced load loop that writes it."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import anyio
import httpx
import orjson

Status = Literal["acked", "rejected", "indeterminate"]
Json = dict[str, Any]

RETRY_PAUSE_S: Final = 0.2  # when ingest gave no Retry-After (no answer at all)
DEFINITE_503: Final = frozenset({"backlog", "overloaded"})  # refused before anything was appended


@dataclass(frozen=True, slots=True)
class Attempt:
    started: float  # time.monotonic()
    ended: float
    http_status: int | None  # None: no HTTP answer (timeout, connection error)
    outcome: str  # accepted | duplicate | an error reason | an exception name
    status: Status
    retry_after: str | None = None

    @property
    def latency_s(self) -> float:
        return self.ended - self.started


@dataclass(slots=True)
class Sent:
    event_id: str
    comment_id: str
    owner: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def group_id(self) -> str:
        return f"comment:{self.comment_id}"

    @property
    def status(self) -> Status:
        """Acked if any attempt was; else indeterminate if any attempt may have been appended."""
        statuses = {a.status for a in self.attempts}
        if "acked" in statuses:
            return "acked"
        return "indeterminate" if "indeterminate" in statuses else "rejected"

    @property
    def acked_at(self) -> float | None:
        return next((a.ended for a in self.attempts if a.status == "acked"), None)


class Ledger:
    """Every event sent, by event id and by comment id, with each attempt's answer."""

    def __init__(self) -> None:
        self.events: dict[str, Sent] = {}
        self.by_comment: dict[str, Sent] = {}
        self.attempts: list[Attempt] = []

    def record(self, event: Json, attempt: Attempt) -> None:
        sent = self.events.get(event["id"])
        if sent is None:
            sent = Sent(event["id"], event["comment"], event["owner"])
            self.events[sent.event_id] = sent
            self.by_comment[sent.comment_id] = sent
        sent.attempts.append(attempt)
        self.attempts.append(attempt)

    def with_status(self, status: Status) -> list[Sent]:
        return [s for s in self.events.values() if s.status == status]

    def owners(self) -> set[str]:
        return {s.owner for s in self.events.values()}

    def histogram(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        """HTTP status (or exception) of the attempts that started in [since, until)."""
        return Counter(
            str(a.http_status) if a.http_status is not None else a.outcome
            for a in self.attempts
            if since <= a.started < until
        )

    def counts(self) -> dict[str, int]:
        return {s: len(self.with_status(s)) for s in ("acked", "rejected", "indeterminate")}


class CommentFactory:
    """Comment events with unique ids and comment ids, spread over `owners`, each by a new
    actor (so over every partition, and never a burst that moderation would hold for review);
    nobody comments on their own post."""

    def __init__(self, run: str, owners: Sequence[str]) -> None:
        self.run = run
        self.owners = list(owners)
        self._n = itertools.count()

    def make(self, owner: str | None = None) -> Json:
        n = next(self._n)
        owner = owner if owner is not None else self.owners[n % len(self.owners)]
        return {
            "type": "comment",
            "id": f"{self.run}-e{n}",
            "actor": f"{self.run}-a{n}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "post": f"{owner}-post{n % 5}",
            "owner": owner,
            "comment": f"{self.run}-c{n}",
            "text": f"comment {n}",
        }


def classify(response: httpx.Response) -> tuple[Status, str]:
    try:
        body: Json = response.json()
    except ValueError:
        body = {}
    if response.status_code == 202:
        result = body["results"][0]
        if result["status"] in ("accepted", "duplicate"):
            return "acked", str(result["status"])
        return "rejected", str(result.get("error", "rejected"))
    reason = str(body.get("error", "")) if isinstance(body, dict) else ""
    if response.status_code == 503 and reason in DEFINITE_503:
        return "rejected", reason
    if response.status_code >= 500:
        # e.g. "unavailable": the append timed out or the connection broke; it may have happened
        return "indeterminate", reason or str(response.status_code)
    return "rejected", reason or str(response.status_code)


async def post_event(http: httpx.AsyncClient, ledger: Ledger, event: Json, service_key: str) -> Attempt:
    headers = {"Authorization": f"Bearer {service_key}", "Content-Type": "application/json"}
    started = time.monotonic()
    try:
        response = await http.post("/v1/events", content=orjson.dumps(event), headers=headers)
    except httpx.HTTPError as exc:
        attempt = Attempt(started, time.monotonic(), None, type(exc).__name__, "indeterminate")
    else:
        status, outcome = classify(response)
        retry_after = response.headers.get("retry-after")
        attempt = Attempt(started, time.monotonic(), response.status_code, outcome, status, retry_after)
    ledger.record(event, attempt)
    return attempt


async def drive_load(
    http: httpx.AsyncClient,
    ledger: Ledger,
    factory: CommentFactory,
    service_key: str,
    *,
    count: int,
    duration_s: float,
    rate_per_s: float = 150.0,
    concurrency: int = 6,
    stop: anyio.Event | None = None,
    retries: int = 0,
) -> int:
    """POST up to `count` events, one per request, paced at `rate_per_s`, for at most
    `duration_s` or until `stop` is set; returns how many were sent. An event refused with a
    5xx or left indeterminate is sent again (same id) up to `retries` times, after Retry-After,
    as a producer would: ingest must deduplicate it."""
    began = time.monotonic()
    sent = 0
    index = itertools.count()

    async def poster() -> None:
        nonlocal sent
        while True:
            i = next(index)
            if i >= count or (stop is not None and stop.is_set()):
                return
            due = began + i / rate_per_s
            if due - began > duration_s:
                return
            await anyio.sleep(max(0.0, due - time.monotonic()))  # pacing, not synchronisation
            if stop is not None and stop.is_set():
                return
            event = factory.make()
            attempt = await post_event(http, ledger, event, service_key)
            for _ in range(retries):
                if attempt.status == "acked" or (attempt.http_status or 500) < 500:
                    break
                await anyio.sleep(float(attempt.retry_after or RETRY_PAUSE_S))  # as told by ingest
                attempt = await post_event(http, ledger, event, service_key)
            sent += 1

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(poster)
    return sent
