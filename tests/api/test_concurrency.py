"""Under concurrency every caller gets its own answer; a failing batch fails only its own."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from api.batcher import BatchFailedError, MicroBatcher
from api.main import create_app
from api.settings import ApiSettings
from lab.penguins import penguins


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an in-process client that can run
    requests concurrently (TestClient sends one at a time)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def all_at_once(app: Any, bodies: list[dict]) -> list[httpx.Response]:
    async with serving(app) as client:
        return await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))


async def one_by_one(app: Any, bodies: list[dict]) -> list[dict]:
    async with serving(app) as client:
        return [(await client.post("/predict", json=body)).json() for body in bodies]


@pytest.mark.parametrize(
    ("engine", "batching"), [("sklearn", "on"), ("onnx", "on"), ("onnx", "off")]
)
def test_concurrent_callers_each_get_their_own_prediction(
    model_dir: Path, engine: str, batching: str
) -> None:
    rng = random.Random(3)
    bodies = [dict(rng.choice(penguins())) for _ in range(300)]
    # Admission lets all 300 in at once, however slowly they are served: this is about
    # answers, not overload (tests/api/test_overload.py).
    app = create_app(
        ApiSettings(
            model_dir=model_dir,
            engine=engine,
            batching=batching,
            max_in_flight=len(bodies),
            max_queue_seconds=60,
        ),
        registry=CollectorRegistry(),
    )
    reference = create_app(
        ApiSettings(model_dir=model_dir, engine=engine, batching="off"),
        registry=CollectorRegistry(),
    )

    responses = asyncio.run(all_at_once(app, bodies))
    singles = asyncio.run(one_by_one(reference, bodies))

    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["species"] for r in responses] == [s["species"] for s in singles]
    for response, single in zip(responses, singles, strict=True):
        for species, probability in single["probabilities"].items():
            assert response.json()["probabilities"][species] == pytest.approx(probability, abs=1e-6)
    registry = app.state.metrics.registry
    calls = registry.get_sample_value("model_batch_size_count", {"engine": engine})
    rows = registry.get_sample_value("model_batch_size_sum", {"engine": engine})
    assert rows == 300
    if batching == "on":
        assert calls < rows, "concurrent requests were never merged into one model call"


def test_a_failing_batch_fails_only_its_own_callers() -> None:
    release = threading.Event()

    def predict(rows: Sequence[dict]) -> np.ndarray:
        if any(row.get("poison") for row in rows):
            raise ValueError("poisoned row")
        if any(row.get("slow") for row in rows):
            release.wait(5)
        return np.array([[float(row["id"]), 0.0, 0.0] for row in rows])

    async def scenario() -> list[Any]:
        batcher = MicroBatcher(predict, max_rows=64)
        await batcher.start()
        # Batch 1 runs alone and holds the worker, so batch 2 gathers both next callers.
        first = asyncio.create_task(batcher.predict([{"id": 1, "slow": True}]))
        await asyncio.sleep(0.05)
        poisoned = asyncio.create_task(batcher.predict([{"id": 2, "poison": True}]))
        neighbour = asyncio.create_task(batcher.predict([{"id": 3}]))
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, poisoned, neighbour, return_exceptions=True)
        after = await batcher.predict([{"id": 4}])
        await batcher.stop()
        return [*results, after]

    first, poisoned, neighbour, after = asyncio.run(scenario())

    assert first[0][0] == 1.0
    assert isinstance(poisoned, BatchFailedError)
    assert "ValueError: poisoned row" in str(poisoned)
    assert isinstance(neighbour, BatchFailedError), "the neighbour shared the failing batch"
    assert after[0][0] == 4.0, "the batcher must keep serving after a failed batch"


def test_the_batch_observer_gets_the_tags_of_the_callers_in_the_batch() -> None:
    release = threading.Event()
    observed: list[tuple[int, list[Any]]] = []

    def predict(rows: Sequence[dict]) -> np.ndarray:
        if any(row.get("slow") for row in rows):
            release.wait(5)
        return np.zeros((len(rows), 3))

    async def scenario() -> None:
        batcher = MicroBatcher(
            predict, max_rows=64, on_batch=lambda n, _, tags: observed.append((n, tags))
        )
        await batcher.start()
        first = asyncio.create_task(batcher.predict([{"slow": True}], tag="a"))
        await asyncio.sleep(0.05)
        untagged = asyncio.create_task(batcher.predict([{}, {}]))
        tagged = asyncio.create_task(batcher.predict([{}], tag="c"))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, untagged, tagged)
        await batcher.stop()

    asyncio.run(scenario())

    assert observed == [(1, ["a"]), (3, ["c"])]


def test_api_answers_503_to_the_callers_of_a_failed_model_call(model_dir: Path) -> None:
    app = create_app(
        ApiSettings(model_dir=model_dir, engine="sklearn", batching="on"),
        registry=CollectorRegistry(),
    )

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with serving(app) as client:
            original = app.state.predictor.engine.predict_proba

            def broken(rows: Sequence[dict]) -> np.ndarray:
                if any(row["island"] == "Dream" for row in rows):
                    raise RuntimeError("model crashed")
                return original(rows)

            app.state.predictor.batcher._predict = broken
            bad = await client.post("/predict", json={**penguins()[0], "island": "Dream"})
            good = await client.post("/predict", json={**penguins()[0], "island": "Biscoe"})
        return bad, good

    bad, good = asyncio.run(scenario())

    assert bad.status_code == 503
    assert bad.json()["error"] == "inference_failed"
    assert "RuntimeError: model crashed" in bad.json()["detail"]
    assert good.status_code == 200
