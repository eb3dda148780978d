"""OpenTelemetry tracing, the optional extra `notifier[tracing]`: off unless `OTEL_TRACES_EXPORTER`
names an exporter (`otlp` or `console`); off, every hook in the product is one `None` check.
One trace follows an event: the POST, the append (its context stored with the stream entry),
the fan-out of it and each recipient's apply, moderation screening, and the gateway's push."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanContext, Tracer
    from opentelemetry.util.types import AttributeValue

EXPORTERS: Final = frozenset({"none", "otlp", "console"})


class Tracing:
    """The role's tracer, and the W3C `traceparent` text that carries a span's context through
    the event log and the push channel."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("notifier")
        self._propagator = TraceContextTextMapPropagator()

    def server(self, name: str, headers: Mapping[str, str]) -> AbstractContextManager[Span]:
        """A server span, current while the request is handled, child of the caller's context."""
        from opentelemetry.trace import SpanKind

        return self.tracer.start_as_current_span(name, context=self.incoming(headers), kind=SpanKind.SERVER)

    def span(
        self,
        name: str,
        parent: str | Span | None = None,
        *,
        links: Sequence[str] = (),
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Span:
        """A span started now, to be ended by the caller: child of `parent` (a traceparent or a
        span), else of the current span; linked to the contexts of `links` (traceparents)."""
        from opentelemetry.trace import Link, get_current_span, set_span_in_context

        if isinstance(parent, str):
            context = self.parent(parent)
        elif parent is not None:
            context = set_span_in_context(parent)
        else:
            context = set_span_in_context(get_current_span())
        linked = [Link(s) for s in _span_contexts(self, links)]
        return self.tracer.start_span(name, context=context, links=linked, attributes=attributes)

    def parent(self, traceparent: str) -> Context | None:
        """The context `traceparent` names (None: none, or not valid)."""
        if not traceparent:
            return None
        return self._propagator.extract({"traceparent": traceparent})

    def incoming(self, headers: Mapping[str, str]) -> Context:
        """The caller's context from its `traceparent` header (a new trace when it sent none)."""
        return self._propagator.extract(headers)

    @staticmethod
    def traceparent(span: Span) -> str:
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return ""
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor still holds


def _span_contexts(tracing: Tracing, traceparents: Sequence[str]) -> Iterator[SpanContext]:
    from opentelemetry.trace import get_current_span

    for text in traceparents:
        context = tracing.parent(text)
        if context is not None:
            span_context = get_current_span(context).get_span_context()
            if span_context.is_valid:
                yield span_context


def configure(role: str, exporter: str) -> Tracing:
    """A provider exporting to `exporter`; the OpenTelemetry SDK reads the other standard
    variables itself (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create({"service.name": f"notifier-{role}"})  # OTEL_SERVICE_NAME wins
    provider = TracerProvider(resource=resource)
    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return Tracing(provider)


def available() -> bool:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


_current: contextvars.ContextVar[Tracing | None] = contextvars.ContextVar("notifier_tracing", default=None)


def current() -> Tracing | None:
    """The role's tracing, None when off (set once by the composition root; tasks inherit it)."""
    return _current.get()


def use(tracing: Tracing | None) -> None:
    _current.set(tracing)
