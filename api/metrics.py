"""Prometheus metrics of one replica. Their names are a contract (README, "Metrics").

HTTP metrics come from prometheus-fastapi-instrumentator: its configuration, its labels
(handler template or `none`, method, status) and its instrumentation-function protocol,
with one instrumentation function of ours. That function records `http_requests_total`
and `http_request_duration_seconds` (the project's buckets, status kept apart so success
and failure latencies never mix) and puts the trace id of sampled requests on the latency
sample as an exemplar. The instrumentator's default set records five metrics a request.

Its stock middleware costs about 26 us a request on this hardware, a fifth of the whole
prediction, mostly resolving the handler template again and copying the response;
LeanInstrumentatorMiddleware keeps its semantics for the configuration used here and
costs a third of that (`make bench` measures both).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from timeit import default_timer

from fastapi import FastAPI
from opentelemetry import trace
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info as RequestInfo
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.buckets import BATCH_SIZE_BUCKETS, INFERENCE_BUCKETS, LATENCY_BUCKETS
from api.cgroup_stats import ReplicaResourceCollector
from api.resources import format_cpus, format_memory, parse_cpus, parse_memory

# `_created` series double the series count and nothing here reads them.
disable_created_metrics()


def current_exemplar() -> dict[str, str] | None:
    """The trace id of the current span when it is sampled, as exemplar labels."""
    context = trace.get_current_span().get_span_context()
    if context.trace_flags.sampled:
        return {
            "trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x"),
        }
    return None


class ServiceMetrics:
    """Every metric of one app instance, in the registry it was given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by handler, method and status",
            ["handler", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by handler, method and status",
            ["handler", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference = Histogram(
            "model_inference_seconds",
            "Duration of one model call (one batch of rows)",
            ["engine"],
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "model_batch_size",
            "Rows per model call",
            ["engine"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.predictions = Counter(
            "model_predictions_total",
            "Predictions served, by predicted species",
            ["species"],
            registry=registry,
        )
        self.model_info = Info(
            "model", "The model being served: version, artefact digest, engine", registry=registry
        )
        self.deployment_info = Info(
            "deployment", "Where this replica runs: replica, config and limits", registry=registry
        )
        self.ready = Gauge(
            "replica_ready",
            "1 while /ready answers 200; 0 while draining or while the model cannot answer",
            registry=registry,
        )
        # Prediction requests turned away by overload protection (api/overload.py) with a
        # 503 before any work; they count in http_requests_total as 503s as well.
        self.shed = Counter(
            "api_requests_shed_total",
            "Requests answered 503 by overload protection, by handler and reason",
            ["handler", "reason"],
            registry=registry,
        )
        # The instrumentator's own in-progress gauge ignores the registry it is given and
        # lands in the global one, so the lean middleware uses this one.
        self.inprogress = Gauge(
            "http_requests_inprogress",
            "HTTP requests being served, by method and handler",
            ["method", "handler"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._inprogress_children: dict[tuple[str, str], Gauge] = {}

    def register_runtime_collectors(self, cpu_limit: str, memory_limit: str) -> None:
        """Process CPU and memory, Python runtime, and the replica's cgroup limits."""
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry, platform=platform)
        gc_collector.GCCollector(registry=self.registry)
        self.registry.register(
            ReplicaResourceCollector(parse_cpus(cpu_limit), parse_memory(memory_limit))
        )

    def describe_deployment(
        self,
        *,
        replica: str,
        config: str,
        cpu_limit: str,
        memory_limit: str,
        engine: str,
        batching: bool,
    ) -> None:
        self.deployment_info.info(
            {
                "replica": replica,
                "config": config,
                "cpu_limit": format_cpus(parse_cpus(cpu_limit)),
                "memory_limit": format_memory(parse_memory(memory_limit)),
                "engine": engine,
                "batching": "on" if batching else "off",
            }
        )

    def http_series(self, handler: str, method: str, status: str) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of one (handler, method, status),
        resolved once: `labels()` costs more than the observation itself."""
        key = (handler, method, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        return pair

    def inprogress_series(self, method: str, handler: str) -> Gauge:
        key = (method, handler)
        gauge = self._inprogress_children.get(key)
        if gauge is None:
            gauge = self._inprogress_children[key] = self.inprogress.labels(method, handler)
        return gauge

    def http_instrumentation(self) -> Callable[[RequestInfo], None]:
        series = self.http_series

        def record(info: RequestInfo) -> None:
            count, latency = series(info.modified_handler, info.method, info.modified_status)
            count.inc()
            latency.observe(info.modified_duration, exemplar=current_exemplar())

        return record

    def instrument(self, app: FastAPI, *, lean: bool = True) -> None:
        """Add the HTTP metrics middleware to `app`.

        `lean=False` adds the instrumentator's stock middleware instead, for benchmarks:
        the same metrics except the in-progress gauge (see above).
        """
        instrumentator = Instrumentator(
            should_group_status_codes=False,
            excluded_handlers=["^/metrics$"],
            registry=self.registry,
        ).add(self.http_instrumentation())
        if not lean:
            instrumentator.instrument(app)
            return
        app.add_middleware(
            LeanInstrumentatorMiddleware,
            inprogress=self.inprogress_series,
            should_group_status_codes=instrumentator.should_group_status_codes,
            excluded_handlers=instrumentator.excluded_handlers,
            instrumentations=instrumentator.instrumentations,
            registry=self.registry,
        )


class LeanInstrumentatorMiddleware(PrometheusInstrumentatorMiddleware):
    """The instrumentator's middleware with a shorter request path.

    Same labels and the same Info handed to the instrumentation functions. Per request it
    looks the handler template up in a table filled on first sight of each routed
    (method, path), and it skips what this configuration does not use: status grouping,
    rounding, body capture, the copy of the response, gathering async instrumentations.
    """

    _MAX_TEMPLATES = 4096

    def __init__(
        self, app: ASGIApp, *, inprogress: Callable[[str, str], Gauge], **kwargs: object
    ) -> None:
        super().__init__(app, **kwargs)  # type: ignore[arg-type]
        if (
            self.should_group_status_codes
            or self.should_round_latency_decimals
            or self.should_instrument_requests_inprogress
            or self.body_handlers
            or self.async_instrumentations
        ):
            raise ValueError("LeanInstrumentatorMiddleware does not support this configuration")
        self._inprogress = inprogress
        self._routes: dict[tuple[str, str], tuple[str, bool]] = {}

    def _resolve(self, scope: Scope) -> tuple[str, bool]:
        key = (scope["method"], scope["path"])
        resolved = self._routes.get(key)
        if resolved is None:
            handler, templated = self._get_handler(Request(scope))
            excluded = self._is_handler_excluded(handler, templated)
            if not templated and self.should_group_untemplated:
                handler = "none"
            resolved = (handler, excluded)
            # Only routed paths are remembered: a scanner's paths must not grow the table.
            if templated and len(self._routes) < self._MAX_TEMPLATES:
                self._routes[key] = resolved
        return resolved

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = default_timer()
        handler, excluded = self._resolve(scope)
        if excluded:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        inprogress = self._inprogress(method, handler)
        inprogress.inc()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            inprogress.dec()
            info = RequestInfo(
                request=Request(scope),
                response=None,
                method=method,
                modified_handler=handler,
                modified_status=str(status),
                modified_duration=max(default_timer() - start, 0.0),
            )
            for instrumentation in self.instrumentations:
                instrumentation(info)
