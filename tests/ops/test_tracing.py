"""One trace follows an event: the POST span (child of the caller's traceparent), the append, the
fan-out batch (linked), the event's apply and each recipient's item, moderation screening, and
the gateway's push. In-process with an in-memory exporter, then across real api, worker and
gateway processes exporting OTLP/HTTP to a collector this test runs."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect

from notifier.runtime import tokens, tracing
from notifier.runtime.server import HttpService
from notifier.runtime.settings import AuthSettings, Settings
from tests.conftest import SERVICE_KEYS
from tests.e2e.harness import running_app
from tests.faults.harness import JWT_SECRET, SERVICE_KEY, Lab, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CALLER = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{CALLER:016x}-01"


@dataclass(frozen=True)
class Seen:
    name: str
    service: str
    trace_id: int
    span_id: int
    parent_id: int | None
    links: tuple[int, ...]


def comment(owner: str) -> dict[str, str]:
    now = datetime.now(UTC).isoformat()
    return {"type": "comment", "id": "c-1", "actor": "bob", "post": "p1", "owner": owner, "comment": "k1",
            "text": "what a lovely photo", "occurred_at": now}  # fmt: skip


def check_chain(spans: list[Seen], *, services: dict[str, str] | None = None) -> None:
    """Every hop's parent is the one before it, all in the caller's trace."""
    by_name = {s.name: s for s in spans}
    names = {"POST /v1/events", "event_log.append", "fanout.batch", "fanout.apply", "fanout.apply_item",
             "moderation.screen", "gateway.push"}  # fmt: skip
    assert names <= set(by_name), sorted(by_name)
    post, append = by_name["POST /v1/events"], by_name["event_log.append"]
    apply, item = by_name["fanout.apply"], by_name["fanout.apply_item"]
    assert post.parent_id == CALLER
    assert append.parent_id == post.span_id
    assert apply.parent_id == append.span_id
    assert by_name["moderation.screen"].parent_id == append.span_id
    assert item.parent_id == apply.span_id
    assert by_name["gateway.push"].parent_id == item.span_id
    assert append.span_id in by_name["fanout.batch"].links
    assert {by_name[n].trace_id for n in names - {"fanout.batch"}} == {TRACE_ID}
    for name, service in (services or {}).items():
        assert by_name[name].service == service, name


async def push_once(ws_url: str, token: str, post: object) -> None:
    async with connect(ws_url, proxy=None, open_timeout=10, compression=None) as ws:
        await ws.send(orjson.dumps({"type": "auth", "token": token}).decode())
        with anyio.fail_after(10):
            assert orjson.loads(await ws.recv())["type"] == "ready"
            await post  # type: ignore[misc]
            assert orjson.loads(await ws.recv())["type"] == "change"


@pytest.mark.anyio
async def test_one_trace_follows_an_event_in_process(redis: Redis, settings: Settings) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(tracing.Tracing(provider))
    try:
        async with running_app(settings, redis) as app:
            headers = {
                "Authorization": f"Bearer {SERVICE_KEYS['posts']}",
                "Content-Type": "application/json",
                "traceparent": TRACEPARENT,
            }
            post = app.http.post("/v1/events", content=orjson.dumps(comment("olga")), headers=headers)
            await push_once(app.ws_url, tokens.issue(settings.auth, "olga", ttl_s=60), post)

            def seen() -> list[Seen]:
                return [
                    Seen(
                        s.name,
                        "",
                        s.context.trace_id,
                        s.context.span_id,
                        s.parent.span_id if s.parent else None,
                        tuple(link.context.span_id for link in s.links),
                    )
                    for s in exporter.get_finished_spans()
                ]

            await wait_until(lambda: any(s.name == "gateway.push" for s in seen()), 10, what="push span")
            check_chain(seen())
    finally:
        tracing.use(None)
        provider.shutdown()


def test_one_trace_crosses_the_api_worker_and_gateway_processes(tmp_path: Path) -> None:
    anyio.run(_across_processes, tmp_path)


async def _across_processes(tmp_path: Path) -> None:
    received: list[Seen] = []

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    parent = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else None
                    links = tuple(int.from_bytes(link.span_id, "big") for link in span.links)
                    received.append(
                        Seen(
                            span.name,
                            attributes["service.name"],
                            int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.span_id, "big"),
                            parent,
                            links,
                        )
                    )
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    collector = HttpService(
        Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])]),
        host="127.0.0.1",
        port=0,
        ping_interval_s=20,
        max_frame_bytes=65536,
    )
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    async with anyio.create_task_group() as tg:
        await tg.start(collector.run)
        async with Lab(tmp_path, appendonly=False, overrides=otel) as lab:
            api, gateway = lab.role("api", "api"), lab.role("gateway", "gateway")
            worker = lab.worker("w1", {"NOTIFIER_METRICS_PORT": str(free_port())})
            await lab.start(api, gateway, worker)
            headers = {
                "Authorization": f"Bearer {SERVICE_KEY}",
                "Content-Type": "application/json",
                "traceparent": TRACEPARENT,
            }
            post = lab.http.post("/v1/events", content=orjson.dumps(comment("olga")), headers=headers)
            token = tokens.issue(AuthSettings(jwt_secret=JWT_SECRET), "olga", ttl_s=60)
            await push_once(lab.ws_url, token, post)
            await wait_until(
                lambda: any(s.name == "gateway.push" for s in received), 20, what="the gateway's push span"
            )
            for role in (api, gateway, worker):
                role.send(signal.SIGTERM)
            for role in (api, gateway, worker):
                assert await role.wait_exit() == 0
        collector.stop()
    check_chain(
        received,
        services={
            "POST /v1/events": "notifier-api",
            "event_log.append": "notifier-api",
            "fanout.apply_item": "notifier-worker",
            "moderation.screen": "notifier-worker",
            "gateway.push": "notifier-gateway",
        },
    )
