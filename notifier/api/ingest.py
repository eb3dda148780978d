"""POST /v1/events: one event or a batch; every event gets its own verdict."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from notifier.runtime.metrics import Metrics
from notifier.runtime.settings import IngestSettings, ServiceKey
from schemas import decoding
from schemas.errors import CODES, Reason, Rejected
from schemas.events import Event, decode_event, type_name
from schemas.nesting import shallow
from schemas.problems import MEDIA_TYPE, body_of

from .append import EventLog

_Item = tuple[Event | None, Rejected | None]
_BATCH: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ONE: Final = msgspec.json.Decoder(msgspec.Raw)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 before reading when declared too large, or once it grows too large."""
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > limit):
        raise Rejected(Reason.TOO_LARGE, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(Reason.TOO_LARGE, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Rejected(Reason.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")


def split_batch(body: bytes, max_events: int) -> tuple[list[msgspec.Raw], bool]:
    """The raw events of a body holding one event object or an array of them."""
    batched = body.lstrip()[:1] == b"["
    try:  # ValidationError is a DecodeError: either way the body is not the JSON we take
        raws = shallow(_BATCH.decode, body) if batched else [shallow(_ONE.decode, body)]
    except msgspec.DecodeError as exc:
        raise decoding.refusal(exc, body=body) from None
    if batched:
        if not raws:
            raise Rejected(Reason.INVALID, "empty batch")
        if len(raws) > max_events:
            raise Rejected(Reason.TOO_LARGE, f"{len(raws)} events; at most {max_events} a batch")
    elif not bytes(raws[0]).lstrip().startswith(b"{"):
        raise Rejected(Reason.INVALID, "expected an event object or an array of them")
    return raws, batched


def check_event(
    raw: msgspec.Raw, pointer: str, service: ServiceKey, settings: IngestSettings, now_ms: int
) -> _Item:
    try:
        event = decode_event(bytes(raw))
    except msgspec.DecodeError as exc:  # ValidationError included
        return None, decoding.refusal(exc, pointer)
    if type_name(event) not in service.event_types:
        detail = f"service {service.name!r} may not send {type_name(event)!r} events"
        return None, Rejected(Reason.FORBIDDEN, detail, pointer + "/type")
    if event.at_ms > now_ms + settings.max_clock_skew_s * 1000:
        detail = f"occurred_at is more than {settings.max_clock_skew_s}s in the future"
        return None, Rejected(Reason.INVALID, detail, pointer + "/occurred_at")
    if settings.max_lateness_s and event.at_ms < now_ms - settings.max_lateness_s * 1000:
        # past the views' horizon (feeds/horizon.py): what it would undo may be trimmed already
        detail = f"occurred_at is more than {settings.max_lateness_s}s in the past"
        return None, Rejected(Reason.TOO_LATE, detail, pointer + "/occurred_at")
    return event, None


async def ingest(
    request: Request, log: EventLog, settings: IngestSettings, service: ServiceKey, counted: Metrics
) -> Response:
    require_json(request)
    body = await read_body(request, settings.max_body_bytes)
    raws, batched = split_batch(body, settings.max_batch_events)
    now_ms = int(time.time() * 1000)
    items = [
        check_event(raw, f"/{i}" if batched else "", service, settings, now_ms) for i, raw in enumerate(raws)
    ]
    good = [event for event, _ in items if event is not None]
    try:
        # asyncio's timeout, not anyio.fail_after: a cancel scope per request costs ~10% of a
        # single-event POST, and the API only ever runs on asyncio (uvicorn)
        async with asyncio.timeout(settings.timeout_s):
            appended = iter(await log.append(good, service.name))
    except TimeoutError:
        # the append may or may not have happened: a retry with the same ids is deduplicated
        raise Rejected(Reason.UNAVAILABLE, "storage did not answer in time; retry") from None
    results: list[dict[str, str]] = []
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for i, (raw_item, (event, error)) in enumerate(zip(raws, items, strict=True)):
        if event is not None:
            done = next(appended)
            if done.status == "conflict":
                pointer = f"/{i}/id" if batched else "/id"
                error = Rejected(Reason.CONFLICT, "event id reused with a different body", pointer)
            else:
                counts[done.status] += 1
                results.append({"id": event.id, "status": done.status, "position": done.position})
                continue
        assert error is not None
        counts["rejected"] += 1
        counted.ingest_events_rejected[error.reason].inc()
        result = {"status": "rejected", "error": error.reason.value, "detail": error.detail}
        if error.pointer:
            result["pointer"] = error.pointer
        event_id = _id_of(raw_item)
        if event_id:
            result["id"] = event_id
        results.append(result)
    counted.ingest_events_accepted.inc(counts["accepted"])
    counted.ingest_events_duplicate.inc(counts["duplicate"])
    reply = {**counts, "results": results}
    if counts["accepted"] + counts["duplicate"]:
        return Response(orjson.dumps(reply), status_code=202, media_type="application/json")
    return _all_rejected(reply, results)


def _all_rejected(reply: dict[str, object], results: list[dict[str, str]]) -> Response:
    """Every event refused: a problem (its `results` say why, event by event)."""
    reasons = {Reason(r["error"]) for r in results}
    reason = reasons.pop() if len(reasons) == 1 else Reason.INVALID
    if len(results) == 1:
        problem = body_of(reason, results[0]["detail"], results[0].get("pointer", ""))
    else:
        problem = body_of(reason, f"all {len(results)} events were refused; see results")
    return Response(
        orjson.dumps({**problem, **reply}),
        status_code=CODES[reason].http,
        media_type=MEDIA_TYPE,
    )


def _id_of(raw: msgspec.Raw) -> str:
    try:
        value = orjson.loads(bytes(raw))
    except orjson.JSONDecodeError:
        return ""
    event_id = value.get("id") if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) and len(event_id) <= 128 else ""
