"""POST /predict and POST /predict/batch."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import annotated_types
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import Response

from api.predictor import Predictor
from api.routes.json_body import JsonBodyRoute
from api.schemas import BatchResponse, ErrorResponse, Penguin, PredictResponse, batch_request_model

# The prediction endpoints: overload protection (api/overload.py) guards exactly these.
PATHS = ("/predict", "/predict/batch")

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Body larger than API_MAX_BODY_BYTES"},
    415: {"model": ErrorResponse, "description": "Body is not JSON"},
    422: {"model": ErrorResponse, "description": "Invalid field; `field` names it"},
    503: {
        "model": ErrorResponse,
        "description": (
            "Overloaded (`overloaded`: more than API_MAX_IN_FLIGHT predictions at once; "
            "retry after the Retry-After header's seconds), inference failed, or the "
            "service is stopping"
        ),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before retrying a shed request",
                "schema": {"type": "integer"},
            }
        },
    },
}


@dataclass(frozen=True)
class PredictEndpoint:
    """One prediction endpoint: its path, its body model, and how a validated body becomes
    the JSON answer. FastAPI's route (below) and the hot path (api/hot_path.py) both serve
    it from this one definition, so they validate and answer alike."""

    path: str
    model: type[BaseModel]
    answer: Callable[[Predictor, Any], Awaitable[bytes]]


async def _answer_one(predictor: Predictor, penguin: Penguin) -> bytes:
    return await predictor.answer_one(penguin.__dict__)


async def _answer_many(predictor: Predictor, batch: Any) -> bytes:
    return await predictor.answer_many([penguin.__dict__ for penguin in batch.instances])


def endpoints(max_batch_items: int) -> tuple[PredictEndpoint, PredictEndpoint]:
    """/predict and /predict/batch, whose size bound comes from API_MAX_BATCH_ITEMS."""
    return (
        PredictEndpoint(PATHS[0], Penguin, _answer_one),
        PredictEndpoint(PATHS[1], batch_request_model(max_batch_items), _answer_many),
    )


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def predict(request: Request, penguin: Penguin) -> Response:
    """Species of one penguin, with per-class probabilities."""
    return _json(await _answer_one(request.app.state.predictor, penguin))


def add_routes(app: FastAPI, served: tuple[PredictEndpoint, PredictEndpoint]) -> None:
    """Registered on the app itself: an included router adds a dispatch layer per request.

    These routes describe the endpoints in /openapi.json and /docs, and serve them when
    the hot path is off (API_HOT_PATH=false)."""
    one, batch = served
    batch_model = batch.model

    async def predict_batch(request: Request, batch: batch_model) -> Response:  # type: ignore[valid-type]
        return _json(await _answer_many(request.app.state.predictor, batch))

    limit = batch_model.model_fields["instances"].metadata
    most = next(m.max_length for m in limit if isinstance(m, annotated_types.MaxLen))
    predict_batch.__doc__ = f"Species of 1 to {most} penguins, answered in order."
    for endpoint, function, response_model in (
        (one, predict, PredictResponse),
        (batch, predict_batch, BatchResponse),
    ):
        app.router.add_api_route(
            endpoint.path,
            function,
            methods=["POST"],
            response_model=response_model,
            responses=ERRORS,
            tags=["predict"],
            route_class_override=JsonBodyRoute,
        )
