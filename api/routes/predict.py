"""POST /predict and POST /predict/batch."""

from typing import Any

from fastapi import FastAPI, Request
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


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def predict(request: Request, penguin: Penguin) -> Response:
    """Species of one penguin, with per-class probabilities."""
    predictor: Predictor = request.app.state.predictor
    return _json(await predictor.answer_one(penguin.__dict__))


def add_routes(app: FastAPI, max_batch_items: int) -> None:
    """Registered on the app itself: an included router adds a dispatch layer per request."""
    batch_model = batch_request_model(max_batch_items)

    async def predict_batch(request: Request, batch: batch_model) -> Response:  # type: ignore[valid-type]
        predictor: Predictor = request.app.state.predictor
        rows = [penguin.__dict__ for penguin in batch.instances]
        return _json(await predictor.answer_many(rows))

    predict_batch.__doc__ = f"Species of 1 to {max_batch_items} penguins, answered in order."
    for path, endpoint, response_model in zip(
        PATHS, (predict, predict_batch), (PredictResponse, BatchResponse), strict=True
    ):
        app.router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=response_model,
            responses=ERRORS,
            tags=["predict"],
            route_class_override=JsonBodyRoute,
        )
