"""OpenTelemetry tracing: off unless the standard ``OTEL_*`` variables switch it on.

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint is
set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and
``OTEL_SDK_DISABLED`` is not ``true``. These are the SDK's own variables, so they are read here, at
process start, rather than through ``HOOKBAY_`` settings: every OpenTelemetry deployment already
knows how to set them, and the exporters read the rest (headers, protocol, sampler) themselves.

Off, every helper here is a branch on a module flag: no provider, no interceptors, no spans.

A packet crosses two asynchronous hand-offs (the outbox to the parser, the parser's outbox to
actions), so the receiver stores its span's ``traceparent`` with the packet; the parser's work on
that packet and its call to the actions service continue that trace.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog

log = structlog.get_logger("hookbay.tracing")

_tracer: Any = None  # an opentelemetry Tracer once configured


def wanted(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; empty when tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if named:
        return [e for e in named if e != "none"]
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ["otlp"]
    return []


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider for this process if the environment asks for one; return whether it did.

    ``service`` names the process (``service.name`` is ``hookbay-<service>`` unless
    ``OTEL_SERVICE_NAME`` says otherwise).
    """
    global _tracer
    environ = os.environ if environ is None else environ
    exporters = wanted(environ)
    if not exporters:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; attributes given here win.
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: f"hookbay-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in exporters:
        if name == "console":
            # One span per line, so the console output stays greppable next to the JSON log lines.
            exporter: Any = ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            log.warning("tracing.unknown_exporter", exporter=name)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("hookbay")
    log.info("tracing.enabled", exporters=exporters)
    return True


def enabled() -> bool:
    return _tracer is not None


def server_interceptors() -> list[Any]:
    """The gRPC server interceptor that continues callers' traces (health checks excluded: probes
    would otherwise fill the trace store)."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return [aio_server_interceptor(filter_=filters.negate(filters.health_check()))]


def client_interceptors() -> list[Any]:
    """The gRPC client interceptors that start a client span and send its context in metadata."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def _context(traceparent: str | None) -> Any:
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span for the block, the child of ``parent`` (a stored traceparent) when given, otherwise of
    the current span. Yields None when tracing is off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(
        name, context=_context(parent), kind=SpanKind[kind.upper()], attributes=dict(attributes or {})
    ) as current:
        yield current


@contextlib.contextmanager
def batch_span(name: str, traceparents: Sequence[str | None], *, kind: str = "internal") -> Iterator[Any]:
    """A span for work on a batch of packets: a batch of one continues that packet's trace; a
    larger batch starts its own trace and links each packet's (one span cannot have many parents)."""
    if _tracer is None:
        yield None
        return
    if len(traceparents) == 1:
        with span(name, parent=traceparents[0], kind=kind, attributes={"hookbay.packets": 1}) as current:
            yield current
        return
    from opentelemetry.trace import Link, SpanKind, get_current_span

    links = []
    for traceparent in traceparents:
        ctx = get_current_span(_context(traceparent)).get_span_context() if traceparent else None
        if ctx is not None and ctx.is_valid:
            links.append(Link(ctx))
    with _tracer.start_as_current_span(
        name, kind=SpanKind[kind.upper()], links=links, attributes={"hookbay.packets": len(traceparents)}
    ) as current:
        yield current


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with work that continues later elsewhere."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
