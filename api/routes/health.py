"""GET / (status), /health (liveness), /ready (readiness), /metadata (model card)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from api.artefact import Artefact
from api.engines import Engine
from api.errors import json_response
from api.settings import ApiSettings

router = APIRouter(tags=["health"])


@router.get("/")
async def root(request: Request) -> Response:
    """Basic status answer: what this is and where to look."""
    state = request.app.state
    return json_response(
        200,
        {
            "service": "penguin-api",
            "status": "draining" if state.draining else "ok",
            "model_version": state.artefact.version,
            "replica": state.settings.replica,
            "config": state.settings.config,
            "endpoints": ["/predict", "/predict/batch", "/health", "/ready", "/metadata", "/docs"],
        },
    )


def health_body(artefact: Artefact, engine: Engine, settings: ApiSettings) -> bytes:
    """The /health answer, encoded once at start: what this replica serves.

    `model_sha256` is the digest of the model file the engine loaded (model.onnx or
    model.joblib), `card_sha256` the digest of the model card that vouches for both,
    the value API_MODEL_SHA256 pins."""
    return orjson.dumps(
        {
            "status": "ok",
            "model_version": artefact.version,
            "model_sha256": engine.sha256,
            "model_file": artefact.path(engine.kind).name,
            "card_sha256": artefact.card_sha256,
            "classes": list(artefact.classes),
            "engine": engine.name,
            "replica": settings.replica,
            "config": settings.config,
        }
    )


@router.get("/health")
async def health(request: Request) -> Response:
    """Liveness: the process answers. Cheap; carries the model's identity."""
    return Response(request.app.state.health_body, media_type="application/json")


@router.get("/ready", responses={503: {"description": "Draining after SIGTERM, or not loaded"}})
async def ready(request: Request) -> Response:
    """Readiness: 200 while the model is loaded and the process is not draining."""
    state = request.app.state
    if state.draining:
        return json_response(503, {"status": "draining"})
    return json_response(200, {"status": "ready", "model_version": state.artefact.version})


@router.get("/metadata")
async def metadata(request: Request) -> dict[str, Any]:
    """The model card: schema, classes, metrics, digests, and how it is served."""
    return request.app.state.model_card


def add_routes(app: FastAPI) -> None:
    """Registered on the app itself, like every route here (see api/routes/predict.py)."""
    app.router.routes.extend(router.routes)
