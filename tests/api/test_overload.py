"""Overload: excess predictions are shed with 503 and Retry-After, probes still answer at
once, and readiness follows a dead or stuck batcher."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.main import create_app
from api.overload import SHED_IN_FLIGHT, SHED_QUEUE_DELAY, QueueEstimate
from api.settings import ApiSettings
from tests.api.test_concurrency import serving
from tests.support import PENGUIN

JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


def make_app(model_dir: Path, **overrides: Any) -> FastAPI:
    settings = ApiSettings(model_dir=model_dir, replica="test-1", **overrides)
    return create_app(settings, registry=CollectorRegistry())


def sample(app: FastAPI, name: str, **labels: str) -> float:
    return app.state.metrics.registry.get_sample_value(name, labels) or 0.0


def hold_the_model(app: FastAPI) -> threading.Event:
    """Make every model call wait until the returned event is set."""
    release = threading.Event()
    batcher = app.state.predictor.batcher
    original = batcher._predict

    def held(rows: Sequence[dict]) -> np.ndarray:
        release.wait(30)
        return original(rows)

    batcher._predict = held
    return release


async def eventually(check: Any, what: str, timeout: float = 10) -> None:
    """Poll `check` on the event loop (the app runs on it too) until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_predictions_beyond_max_in_flight_get_503_with_retry_after(model_dir: Path) -> None:
    app = make_app(model_dir, max_in_flight=2, max_queue_seconds=60, retry_after_seconds=3)

    async def scenario() -> dict[str, Any]:
        async with serving(app) as client:
            release = hold_the_model(app)
            held = [asyncio.create_task(client.post("/predict", json=PENGUIN)) for _ in range(2)]

            async def both_admitted() -> bool:
                return (
                    sample(app, "http_requests_inprogress", method="POST", handler="/predict") == 2
                )

            await eventually(both_admitted, "two predictions in progress")
            shed = await client.post("/predict", json=PENGUIN)
            shed_batch = await client.post("/predict/batch", json={"instances": [PENGUIN]})
            ready = await client.get("/ready")
            health = await client.get("/health")
            release.set()
            served = await asyncio.gather(*held)
            after = await client.post("/predict", json=PENGUIN)
        return {
            "shed": shed,
            "shed_batch": shed_batch,
            "ready": ready,
            "health": health,
            "served": served,
            "after": after,
        }

    result = asyncio.run(scenario())

    shed = result["shed"]
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3"
    assert shed.json()["error"] == "overloaded"
    assert SHED_IN_FLIGHT in shed.json()["detail"]
    assert "API_MAX_IN_FLIGHT" in shed.json()["detail"]
    assert result["shed_batch"].status_code == 503
    assert result["shed_batch"].headers["retry-after"] == "3"
    # Probes answer while every prediction slot is taken.
    assert result["ready"].status_code == 200
    assert result["health"].status_code == 200
    assert [r.status_code for r in result["served"]] == [200, 200]
    assert result["after"].status_code == 200, "the slots must be free again"
    for handler in ("/predict", "/predict/batch"):
        assert sample(app, "api_requests_shed_total", handler=handler, reason=SHED_IN_FLIGHT) == 1
        assert sample(app, "http_requests_total", handler=handler, method="POST", status="503") == 1
        assert sample(app, "api_requests_shed_total", handler=handler, reason=SHED_QUEUE_DELAY) == 0
    assert sample(app, "http_requests_total", handler="/predict", method="POST", status="200") == 3


def test_a_prediction_that_would_wait_too_long_is_shed(model_dir: Path) -> None:
    bound = 0.2
    app = make_app(model_dir, max_queue_seconds=bound, model_call_stuck_seconds=60)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with serving(app) as client:
            release = hold_the_model(app)
            waiting = asyncio.create_task(client.post("/predict", json=PENGUIN))

            async def admitted() -> bool:
                return (
                    sample(app, "http_requests_inprogress", method="POST", handler="/predict") == 1
                )

            await eventually(admitted, "the first prediction to be admitted")
            # Nothing completes while the model is held: once the first request has
            # waited a quarter of the bound, a new one would wait without end.
            await asyncio.sleep(bound)
            shed = await client.post("/predict", json=PENGUIN)
            release.set()
            served = await waiting
            after = await client.post("/predict", json=PENGUIN)
        return shed, served, after

    shed, served, after = asyncio.run(scenario())

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json()["error"] == "overloaded"
    assert SHED_QUEUE_DELAY in shed.json()["detail"]
    assert "API_MAX_QUEUE_SECONDS" in shed.json()["detail"]
    assert served.status_code == 200
    assert after.status_code == 200, "once the queue drains, predictions are admitted again"
    assert sample(app, "api_requests_shed_total", handler="/predict", reason=SHED_QUEUE_DELAY) == 1
    assert sample(app, "api_requests_shed_total", handler="/predict", reason=SHED_IN_FLIGHT) == 0


def test_prediction_slots_are_returned_whatever_the_answer(model_dir: Path) -> None:
    app = make_app(model_dir, max_in_flight=1)

    async def scenario() -> list[int]:
        async with serving(app) as client:
            statuses = [
                (await client.post("/predict", json={**PENGUIN, "island": "Atlantis"})).status_code,
                (await client.post("/predict", content=b"{", headers=JSON)).status_code,
                (await client.post("/predict", content=b"x", headers=TEXT)).status_code,
                (await client.post("/predict", content=b"x" * 300_000, headers=JSON)).status_code,
            ]
            batcher = app.state.predictor.batcher

            def broken(rows: Sequence[dict]) -> np.ndarray:
                raise RuntimeError("model crashed")

            original, batcher._predict = batcher._predict, broken
            statuses.append((await client.post("/predict", json=PENGUIN)).status_code)
            batcher._predict = original
            statuses.append((await client.post("/predict", json=PENGUIN)).status_code)
            return statuses

    assert asyncio.run(scenario()) == [422, 422, 415, 413, 503, 200]
    assert sample(app, "api_requests_shed_total", handler="/predict", reason=SHED_IN_FLIGHT) == 0


def test_ready_turns_503_when_the_batcher_dies(model_dir: Path) -> None:
    app = make_app(model_dir)

    async def scenario() -> dict[str, httpx.Response]:
        async with serving(app) as client:
            before = await client.get("/ready")

            def broken_observer(rows: int, seconds: float, tags: list[Any]) -> None:
                raise RuntimeError("observer bug")

            app.state.predictor.batcher._on_batch = broken_observer
            # The batch in progress when the batcher dies is answered, not left waiting.
            dying = await asyncio.wait_for(client.post("/predict", json=PENGUIN), 10)
            return {
                "before": before,
                "dying": dying,
                "ready": await client.get("/ready"),
                "health": await client.get("/health"),
                "next": await client.post("/predict", json=PENGUIN),
                "gauge": sample(app, "replica_ready"),
            }

    result = asyncio.run(scenario())

    assert result["before"].status_code == 200
    assert result["dying"].status_code == 503
    assert result["dying"].json()["error"] == "inference_failed"
    ready = result["ready"]
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["reason"] == "batcher_dead"
    assert "RuntimeError" in ready.json()["detail"]
    assert result["gauge"] == 0
    assert result["health"].status_code == 200, "liveness is not readiness"
    assert result["next"].status_code == 503
    assert result["next"].json()["error"] == "inference_failed"


def test_ready_turns_503_while_a_model_call_is_stuck_and_recovers(model_dir: Path) -> None:
    app = make_app(model_dir, model_call_stuck_seconds=0.2, max_queue_seconds=60)

    async def scenario() -> dict[str, Any]:
        async with serving(app) as client:
            release = hold_the_model(app)
            stuck = asyncio.create_task(client.post("/predict", json=PENGUIN))

            async def not_ready() -> bool:
                return (await client.get("/ready")).status_code == 503

            await eventually(not_ready, "/ready to report the stuck call")
            ready = await client.get("/ready")
            gauge = sample(app, "replica_ready")
            release.set()
            served = await stuck
            return {
                "ready": ready,
                "gauge": gauge,
                "served": served,
                "ready_after": await client.get("/ready"),
                "gauge_after": sample(app, "replica_ready"),
            }

    result = asyncio.run(scenario())

    ready = result["ready"]
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["reason"] == "model_call_stuck"
    assert "API_MODEL_CALL_STUCK_SECONDS" in ready.json()["detail"]
    assert result["gauge"] == 0
    assert result["served"].status_code == 200
    assert result["ready_after"].status_code == 200
    assert result["gauge_after"] == 1


def test_probes_are_answered_ahead_of_the_request_stack(model_dir: Path) -> None:
    app = make_app(model_dir)

    async def scenario() -> list[int]:
        async with serving(app) as client:
            paths = ("/health", "/ready", "/metadata")
            return [(await client.get(path)).status_code for path in paths]

    assert asyncio.run(scenario()) == [200, 200, 200]
    # The HTTP metrics middleware (like tracing, the body limit and admission) never
    # saw them: nothing stood between them and their answer.
    for handler in ("/health", "/ready"):
        assert sample(app, "http_requests_total", handler=handler, method="GET", status="200") == 0
    # Any other request is counted.
    assert sample(app, "http_requests_total", handler="/metadata", method="GET", status="200") == 1


def test_openapi_documents_the_shed_answer(make_client: Any) -> None:
    schema = make_client().get("/openapi.json").json()

    for path in ("/predict", "/predict/batch"):
        answer = schema["paths"][path]["post"]["responses"]["503"]
        assert "Retry-After" in answer["headers"]
        assert "API_MAX_IN_FLIGHT" in answer["description"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_burst_into_an_idle_replica_is_not_shed_before_it_has_waited(clock: FakeClock) -> None:
    queue = QueueEstimate(clock)
    for request in range(500):
        queue.arrive(request)
    clock.now += 0.2

    # Nothing completed yet, but nothing has waited a quarter of the 1 s bound either.
    assert not queue.too_long(clock.now, bound_s=1.0)
    clock.now += 0.1
    assert queue.too_long(clock.now, bound_s=1.0)


def test_the_wait_is_the_queue_over_the_throughput(clock: FakeClock) -> None:
    queue = QueueEstimate(clock)
    # A replica completing 1,000 requests a second for a second, 300 still waiting.
    for request in range(1300):
        queue.arrive(request)
    for request in range(1000):
        clock.now += 0.001
        queue.leave(request)

    assert queue.waiting == 300
    assert queue.throughput(clock.now) == pytest.approx(1000, rel=0.01)
    assert not queue.too_long(clock.now, bound_s=0.5), "300 / 1000 per s = 0.3 s < 0.5 s"
    assert queue.too_long(clock.now, bound_s=0.25), "0.3 s > 0.25 s"


def test_one_slow_request_among_fast_ones_does_not_shed(clock: FakeClock) -> None:
    queue = QueueEstimate(clock)
    queue.arrive(-1)
    for request in range(2000):
        queue.arrive(request)
        clock.now += 0.001
        queue.leave(request)

    assert queue.oldest_wait(clock.now) == pytest.approx(2.0)
    assert not queue.too_long(clock.now, bound_s=0.25)


def test_a_replica_that_completes_nothing_sheds(clock: FakeClock) -> None:
    queue = QueueEstimate(clock)
    queue.arrive(1)
    clock.now += 0.1

    assert queue.throughput(clock.now) == 0
    assert queue.too_long(clock.now, bound_s=0.25)
