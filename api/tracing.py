"""OpenTelemetry tracing whose cost follows what is sampled.

`RequestTracer` decides whether a request is traced before any span exists: a request
that is not sampled gets no span, no context and no attribute work at all, only a random
draw (or a glance at the caller's `traceparent` flags) and one call of the configured
sampler. A sampled request gets one SERVER span, current while the app handles it, so
the model's span and the metrics' exemplars join its trace. The decision is the
configured sampler's own: for a new trace the id is drawn first and handed to the SDK
through `PresetIdGenerator`, the provider's id generator, so the span the SDK then builds
carries exactly the id the sampler accepted. A W3C `traceparent` from the client is
honoured: its trace continues, and with the default parent-based sampler its sampled flag
decides.

`TracingMiddleware` applies this to every route but the prediction hot path, which calls
`RequestTracer` itself (api/hot_path.py). FastAPI's native telemetry is switched off in
the app so that requests are never traced twice.

Sampled spans leave the process through the SDK's own exporters, in a background thread:
over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and as one JSON object a line to
API_TRACES_FILE when that is set (the native runtime's trace store, read by `python -m
lab trace`; the line format is `span_line` below).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import IO

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import ApiSettings

_PROPAGATOR = TraceContextTextMapPropagator()
# A W3C traceparent of version 00 (the only one defined), as the SDK's propagator reads it.
_TRACEPARENT = re.compile(r"^[ \t]*00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})[ \t]*$")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16


def build_sampler(name: str, ratio: float) -> Sampler:
    root = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
    }
    if name.startswith("parentbased_"):
        return ParentBased(root[name.removeprefix("parentbased_")])
    return root[name]


class PresetIdGenerator(RandomIdGenerator):
    """Random ids, except that the next trace id can be given in advance.

    RequestTracer draws a new trace's id and asks the sampler about it before the SDK
    builds anything; when the answer is yes it presets that id, so the span the SDK
    starts next has it. Everything happens on the event loop's thread between two awaits,
    so no other span can take the preset id."""

    def __init__(self) -> None:
        self.preset: int | None = None

    def generate_trace_id(self) -> int:
        preset, self.preset = self.preset, None
        return preset if preset is not None else super().generate_trace_id()


class RotatingLines:
    """A text file for the exporter that keeps the newest spans within a size bound.

    When a write would take the file past `max_bytes` it becomes `<name>.1` (replacing the
    previous one) and a new file starts, so a replica left running at full load holds at
    most twice the bound on disk, and readers look at both files."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._size = self._file.tell()

    def write(self, text: str) -> int:
        if self._size and self._size + len(text) > self.max_bytes:
            self._file.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("a", encoding="utf-8")
            self._size = 0
        self._size += len(text)
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _hex_span_id(span_id: int | None) -> str | None:
    return None if span_id is None else format(span_id, "016x")


def span_line(span: ReadableSpan) -> str:
    """One span as one JSON line: the ids in hex, as in OTLP/JSON and in exemplars, the
    times in Unix nanoseconds, and the resource that says which process it came from."""
    span_context = span.get_span_context()
    parent = span.parent
    record = {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
        "parent_span_id": _hex_span_id(parent.span_id if parent is not None else None),
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
    }
    return json.dumps(record, separators=(",", ":"), default=str) + "\n"


def file_span_processor(path: Path, max_bytes: int) -> SpanProcessor:
    """The SDK's console exporter, writing `span_line`s to `path` in a background thread."""
    exporter = ConsoleSpanExporter(out=RotatingLines(path, max_bytes), formatter=span_line)
    return BatchSpanProcessor(exporter)


def build_tracer_provider(
    settings: ApiSettings, processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    """A provider with the configured sampler; spans leave only through the exporters the
    settings name (OTLP/HTTP, a file), or through `processors` given by tests."""
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
        id_generator=PresetIdGenerator(),
    )
    for processor in processors or []:
        provider.add_span_processor(processor)
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if settings.traces_file is not None:
        provider.add_span_processor(
            file_span_processor(settings.traces_file, settings.traces_file_max_bytes)
        )
    return provider


class RequestTracer:
    """Decides, per request, whether it is traced, and starts its SERVER span if so."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("api")
        self._sampler = provider.sampler
        ids = provider.id_generator
        # A provider built elsewhere (not by build_tracer_provider) cannot take a preset
        # id: every new trace then goes through the SDK, which is correct, only slower.
        self._ids = ids if isinstance(ids, PresetIdGenerator) else None
        # With the parent-based samplers (the standard ones, and the default) a caller
        # that did not sample decides for us, so its request needs no parsing beyond
        # the flags. Their default for an unsampled remote parent is to drop.
        self._follows_parent = isinstance(self._sampler, ParentBased)

    def start(self, name: str, traceparent: bytes | None, tracestate: bytes | None) -> Span | None:
        """The request's SERVER span when the sampler keeps it; None when it does not.

        `name` is the span's name (`POST /predict`, or the method until the route is
        known); `traceparent` and `tracestate` are the request's headers, if any."""
        if traceparent is None:
            return self._start_root(name)
        text = traceparent.decode("latin-1")
        match = _TRACEPARENT.match(text)
        if (
            match is not None
            and self._follows_parent
            and not int(match[3], 16) & 1
            and match[1] != _INVALID_TRACE
            and match[2] != _INVALID_SPAN
        ):
            return None
        carrier = {"traceparent": text}
        if tracestate is not None:
            carrier["tracestate"] = tracestate.decode("latin-1")
        parent = _PROPAGATOR.extract(carrier)
        if not trace.get_current_span(parent).get_span_context().is_valid:
            # A malformed traceparent is ignored, as the propagator does: a new trace.
            return self._start_root(name)
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        return span if span.is_recording() else None

    def _start_root(self, name: str) -> Span | None:
        if self._ids is None:
            span = self._tracer.start_span(name, kind=SpanKind.SERVER)
            return span if span.is_recording() else None
        trace_id = random.getrandbits(128) or 1
        # Asked with an empty context, as the SDK asks for a new trace: no current span
        # exists here, since unsampled requests never set one.
        decision = self._sampler.should_sample(None, trace_id, name, SpanKind.SERVER)
        if not decision.decision.is_sampled():
            return None
        self._ids.preset = trace_id
        return self._tracer.start_span(name, kind=SpanKind.SERVER)


def activate(span: Span) -> object:
    """Make `span` current (for the model's span and the exemplars); returns the token
    for `context.detach`."""
    return context.attach(trace.set_span_in_context(span))


def finish(span: Span, method: str, path: str, scheme: str, route: str | None, status: int) -> None:
    """The SERVER span's name and attributes, set once at its end, then its end."""
    if route:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attributes(
        {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scheme,
            "http.response.status_code": status,
        }
    )
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()


def trace_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The request's `traceparent` and `tracestate` headers (None when absent)."""
    traceparent = tracestate = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            traceparent = value
        elif name == b"tracestate":
            tracestate = value
    return traceparent, tracestate


class TracingMiddleware:
    """One SERVER span per sampled HTTP request, current while the app handles it."""

    def __init__(self, app: ASGIApp, tracer: RequestTracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        span = self.tracer.start(method, *trace_headers(scope))
        if span is None:
            await self.app(scope, receive, send)
            return
        token = activate(span)
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None)
            finish(span, method, scope["path"], scope.get("scheme", "http"), route, status)
            context.detach(token)  # type: ignore[arg-type]
