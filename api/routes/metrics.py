"""GET /metrics: Prometheus text, or OpenMetrics (with exemplars) when the scraper asks."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from prometheus_client.exposition import choose_encoder
from starlette.responses import Response

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    # Encoded on the event loop (about a millisecond): in the thread pool it would queue
    # behind the predictions of the scikit-learn engine, and a saturated replica would
    # miss its scrapes exactly when its metrics matter most.
    body = encode(request.app.state.metrics.registry)
    return Response(body, media_type=content_type)


def add_routes(app: FastAPI) -> None:
    """Registered on the app itself, like every route here (see api/routes/predict.py)."""
    app.router.routes.extend(router.routes)
