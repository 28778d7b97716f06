"""The app factory: assembles settings, model, metrics, tracing and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from api.artefact import Artefact, open_artefact
from api.body_limit import BodySizeLimitMiddleware
from api.engines import Engine, load_engine
from api.errors import install_error_handlers
from api.hot_path import PredictHotPath
from api.metrics import ServiceMetrics
from api.overload import AdmissionMiddleware, ProbeMiddleware
from api.predictor import Predictor
from api.routes import health, metrics, predict
from api.settings import ApiSettings, get_settings
from api.tracing import RequestTracer, TracingMiddleware, build_tracer_provider

log = logging.getLogger("api")


@dataclass(frozen=True)
class LoadedModel:
    artefact: Artefact
    engine: Engine


def load_model(settings: ApiSettings) -> LoadedModel:
    """Open and verify the artefact, then load the configured engine (ArtefactError if not)."""
    artefact = open_artefact(settings.model_dir, settings.model_sha256, settings.model_digest_file)
    return LoadedModel(artefact, load_engine(artefact, settings.engine))


def _model_card(settings: ApiSettings, model: LoadedModel) -> dict[str, Any]:
    card = {k: v for k, v in model.artefact.metadata.items() if k != "encoding"}
    card["serving"] = {
        "engine": model.engine.name,
        "batching": settings.uses_batching,
        "batch_max_rows": settings.batch_max_rows,
        "batch_max_wait_ms": settings.batch_max_wait_ms,
        "max_batch_items": settings.max_batch_items,
        "max_body_bytes": settings.max_body_bytes,
        "replica": settings.replica,
        "config": settings.config,
        "cpu_limit": settings.cpu_limit or "unlimited",
        "memory_limit": settings.memory_limit or "unlimited",
    }
    return card


def create_app(
    settings: ApiSettings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    model: LoadedModel | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own registry and tracer provider; `model` lets the
    server verify the artefact before it starts listening."""
    settings = settings or get_settings()
    service_metrics = ServiceMetrics(registry or CollectorRegistry())
    service_metrics.register_runtime_collectors(settings.cpu_limit, settings.memory_limit)
    owns_provider = tracer_provider is None
    provider = tracer_provider or build_tracer_provider(settings)
    tracer = provider.get_tracer("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = model or load_model(settings)
        predictor = Predictor(loaded.engine, loaded.artefact, service_metrics, tracer, settings)
        if predictor.batcher is not None:
            await predictor.batcher.start()
        service_metrics.model_info.info(
            {
                "version": loaded.artefact.version,
                # The served file's digest (model.onnx or model.joblib) and the card's.
                "sha256": loaded.engine.sha256,
                "card_sha256": loaded.artefact.card_sha256,
                "engine": loaded.engine.name,
            }
        )
        service_metrics.describe_deployment(
            replica=settings.replica,
            config=settings.config,
            cpu_limit=settings.cpu_limit,
            memory_limit=settings.memory_limit,
            engine=loaded.engine.name,
            batching=settings.uses_batching,
        )
        app.state.artefact = loaded.artefact
        app.state.predictor = predictor
        app.state.model_card = _model_card(settings, loaded)
        app.state.health_body = health.health_body(loaded.artefact, loaded.engine, settings)
        set_draining(app, False)
        log.info(
            "model %s loaded (engine %s, batching %s)",
            loaded.artefact.version,
            loaded.engine.name,
            "on" if settings.uses_batching else "off",
        )
        try:
            yield
        finally:
            set_draining(app, True)
            if predictor.batcher is not None:
                await predictor.batcher.stop()
            if owns_provider:
                provider.shutdown()

    app = FastAPI(
        title="Penguin species API",
        version="1.0.0",
        description="Predicts a Palmer penguin's species. Metrics at /metrics.",
        lifespan=lifespan,
        # Tracing is done by TracingMiddleware, once and cheaply; see api/tracing.py.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = service_metrics
    app.state.draining = True
    # The hot routes come first: routers and the instrumentator match routes in order.
    served = predict.endpoints(settings.max_batch_items)
    predict.add_routes(app, served)
    health.add_routes(app)
    metrics.add_routes(app)
    install_error_handlers(app)
    # Middleware added last runs first: probes skip everything, then admission sheds
    # predictions beyond the limit (api/overload.py says why these two come first), then
    # the hot path serves the predictions itself (api/hot_path.py); every other request
    # goes on through tracing, which wraps metrics, which wrap the body limit.
    request_tracer = RequestTracer(provider) if settings.tracing else None
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    service_metrics.instrument(app, lean=settings.lean_http_metrics)
    if request_tracer is not None:
        app.add_middleware(TracingMiddleware, tracer=request_tracer)
    if settings.hot_path:
        app.add_middleware(
            PredictHotPath,
            endpoints=served,
            state=app.state,
            metrics=service_metrics,
            tracer=request_tracer,
            max_body_bytes=settings.max_body_bytes,
        )
    app.add_middleware(
        AdmissionMiddleware,
        paths=predict.PATHS,
        max_in_flight=settings.max_in_flight,
        max_queue_s=settings.max_queue_seconds,
        retry_after_s=settings.retry_after_seconds,
        metrics=service_metrics,
    )
    app.add_middleware(ProbeMiddleware, probes={"/health": health.health, "/ready": health.ready})
    service_metrics.ready.set_function(lambda: float(health.is_ready(app.state)))
    return app


def set_draining(app: FastAPI, draining: bool) -> None:
    """Turn /ready (and the `replica_ready` gauge, which follows it) 503 or back."""
    app.state.draining = draining
