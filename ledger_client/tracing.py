"""Optional OpenTelemetry tracing across facade -> ledger -> PostgreSQL.

On when OTEL_EXPORTER_OTLP_ENDPOINT is set and the `otel` extra is
installed; otherwise nothing of OpenTelemetry is imported and every function
here is a no-op. The W3C trace context travels on the gRPC metadata
(OpenTelemetry's default propagator), and TradeBoss's own `trace` header is
the span attribute `tradeboss.trace`, so one search finds both.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)
_ON = False


def wanted() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(service_name: str, exporter: Any = None) -> bool:
    """A tracer provider exporting over OTLP (or to `exporter`, for tests), and
    gRPC (both sides) and asyncpg instrumented. Call before any channel,
    server or pool is made."""
    global _ON
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.instrumentation.grpc import (
            GrpcAioInstrumentorClient,
            GrpcAioInstrumentorServer,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("tracing asked for, but the otel extra is not installed")
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorClient().instrument()
    GrpcAioInstrumentorServer().instrument()
    AsyncPGInstrumentor().instrument()
    _ON = True
    log.info("tracing on for %s", service_name)
    return True


def asgi(app: Any) -> Any:
    """The facade's application, with a server span per HTTP request."""
    if not _ON:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)


def tag_tradeboss_trace(trace_id: str) -> None:
    """TradeBoss's `trace` on the current span."""
    if _ON and trace_id:
        from opentelemetry import trace

        trace.get_current_span().set_attribute("tradeboss.trace", trace_id)


@contextlib.contextmanager
def item_span(name: str, trace_id: str) -> Iterator[None]:
    """A span for one item of a batch call (ApplyMovements), a child of the
    call's span, tagged with the item's own TradeBoss trace."""
    if not _ON:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer(__name__).start_as_current_span(name) as span:
        if trace_id:
            span.set_attribute("tradeboss.trace", trace_id)
        yield


def current_context() -> Any:
    """The span context of the caller, to link a batch call to (None: off)."""
    if not _ON:
        return None
    from opentelemetry import trace

    return trace.get_current_span().get_span_context()


@contextlib.contextmanager
def batch_span(name: str, contexts: list[Any]) -> Iterator[None]:
    """A span around a call that carries many callers' items, linked to each
    caller's span: every webhook's trace leads to the batch that carried it."""
    if not _ON:
        yield
        return
    from opentelemetry import trace

    links = [trace.Link(context) for context in contexts if context is not None]
    with trace.get_tracer(__name__).start_as_current_span(name, links=links):
        yield
