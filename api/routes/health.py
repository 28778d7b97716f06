"""GET / (status), /health (liveness), /ready (readiness), /metadata (model card)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.datastructures import State
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


def serving_problem(state: State) -> tuple[str, str] | None:
    """Why predictions cannot be answered now, as (reason, detail); None when they can.

    The micro-batcher's task may have ended, or one model call may be stuck: either way
    every prediction would fail or wait, so the replica must leave the load balancer.
    """
    batcher = state.predictor.batcher
    if batcher is None:
        return None
    return batcher.problem(state.settings.model_call_stuck_seconds)


def is_ready(state: State) -> bool:
    """What /ready answers, as a bool (the `replica_ready` gauge reads it)."""
    return not state.draining and serving_problem(state) is None


@router.get(
    "/ready",
    responses={503: {"description": "Draining, not loaded, or the model cannot answer"}},
)
async def ready(request: Request) -> Response:
    """Readiness: 200 while the model is loaded and can answer and the process is not
    draining. Answered ahead of all other work (api/overload.py), so a busy replica
    still answers at once."""
    state = request.app.state
    if state.draining:
        return json_response(503, {"status": "draining"})
    problem = serving_problem(state)
    if problem is not None:
        reason, detail = problem
        return json_response(503, {"status": "unavailable", "reason": reason, "detail": detail})
    return json_response(200, {"status": "ready", "model_version": state.artefact.version})


@router.get("/metadata")
async def metadata(request: Request) -> dict[str, Any]:
    """The model card: schema, classes, metrics, digests, and how it is served."""
    return request.app.state.model_card


def add_routes(app: FastAPI) -> None:
    """Registered on the app itself, like every route here (see api/routes/predict.py)."""
    app.router.routes.extend(router.routes)
