"""OpenTelemetry tracing: a lean server-span middleware and the tracer provider.

The middleware starts one SERVER span per HTTP request, continuing the caller's trace when
a W3C `traceparent` arrives. It reads headers only when a `traceparent` is present and
computes span attributes only for recorded spans, because at full load every microsecond of
the request path counts (see bench/). FastAPI's native telemetry is switched off in the app
so that requests are never traced twice.
"""

from __future__ import annotations

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import ApiSettings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def build_sampler(name: str, ratio: float) -> Sampler:
    root = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
    }
    if name.startswith("parentbased_"):
        return ParentBased(root[name.removeprefix("parentbased_")])
    return root[name]


def build_tracer_provider(
    settings: ApiSettings, processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    """A provider with the configured sampler; OTLP export only when an endpoint is set."""
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.instance.id": settings.replica,
            "deployment.environment": settings.config,
        }
    )
    provider = TracerProvider(
        sampler=build_sampler(settings.traces_sampler, settings.traces_sampler_arg),
        resource=resource,
    )
    for processor in processors or []:
        provider.add_span_processor(processor)
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


class TracingMiddleware:
    """One SERVER span per HTTP request, current while the app handles it."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope["method"]
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            if span.is_recording():
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attributes(
                    {
                        "http.request.method": method,
                        "url.path": scope["path"],
                        "url.scheme": scope.get("scheme", "http"),
                        "http.response.status_code": status,
                    }
                )
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            span.end()
            context.detach(token)
