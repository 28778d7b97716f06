"""GET / (status), /health (liveness), /ready (readiness), /metadata (model card)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from api.errors import json_response

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
