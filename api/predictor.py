"""Turns validated penguins into answers: inference, its span and metrics, the JSON body.

Where inference runs (API_BATCHING; measured by `make bench`):
- on, the default: through the micro-batcher, a worker thread that merges the rows of
  requests in flight together into one model call. It never waits for more requests, so
  a lone request pays only the hop to the thread (~0.1 ms); under load the event loop
  keeps serving while the model computes, and one call serves many requests: with the
  ONNX engine 20-30 % more requests/s at 128 connections than inline, and for
  scikit-learn, whose single call costs milliseconds whatever the row count, ~40 times more;
- off: ONNX inline on the event loop (each call ~10 us); scikit-learn one thread-pool
  call per request (the naive way).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import orjson
from opentelemetry import trace
from starlette.concurrency import run_in_threadpool

from api.artefact import Artefact
from api.batcher import MicroBatcher
from api.engines import Engine, Row
from api.metrics import ServiceMetrics, current_exemplar
from api.settings import ApiSettings


class Predictor:
    def __init__(
        self,
        engine: Engine,
        artefact: Artefact,
        metrics: ServiceMetrics,
        tracer: trace.Tracer,
        settings: ApiSettings,
    ) -> None:
        self.engine = engine
        self.version = artefact.version
        self.classes = engine.classes
        self._tracer = tracer
        self._inference = metrics.inference.labels(engine.name)
        self._batch_size = metrics.batch_size.labels(engine.name)
        self._per_class = [metrics.predictions.labels(c) for c in self.classes]
        self._span_attributes = {"model.version": self.version, "model.engine": engine.name}
        self.batcher: MicroBatcher | None = None
        if settings.uses_batching:
            self.batcher = MicroBatcher(
                engine.predict_proba,
                max_rows=settings.batch_max_rows,
                max_wait_s=settings.batch_max_wait_ms / 1000,
                on_batch=self._observe_batch,
            )
        self._inline = engine.name == "onnx"

    def _observe_batch(self, rows: int, seconds: float, exemplars: list[dict[str, str]]) -> None:
        self._inference.observe(seconds, exemplars[0] if exemplars else None)
        self._batch_size.observe(rows)

    async def probabilities(self, rows: Sequence[Row]) -> np.ndarray:
        # A request whose server span is not recorded gets no inference span either: every
        # standard sampler would drop it, and creating it costs more than the model call.
        span = (
            self._tracer.start_span("model.inference", attributes=self._span_attributes)
            if trace.get_current_span().is_recording()
            else trace.INVALID_SPAN
        )
        try:
            if self.batcher is not None:
                result = await self.batcher.predict(rows, current_exemplar())
            else:
                started = time.perf_counter()
                if self._inline:
                    result = self.engine.predict_proba(rows)
                else:
                    result = await run_in_threadpool(self.engine.predict_proba, rows)
                self._inference.observe(time.perf_counter() - started, current_exemplar())
                self._batch_size.observe(len(rows))
            if span.is_recording():
                span.set_attribute("model.batch_size", len(rows))
        finally:
            span.end()
        return result

    def _prediction(self, probabilities: np.ndarray) -> dict[str, object]:
        best = int(probabilities.argmax())
        self._per_class[best].inc()
        return {
            "species": self.classes[best],
            "probabilities": dict(zip(self.classes, probabilities.tolist(), strict=True)),
        }

    async def answer_one(self, row: Row) -> bytes:
        probabilities = await self.probabilities((row,))
        answer = self._prediction(probabilities[0])
        answer["model_version"] = self.version
        return orjson.dumps(answer)

    async def answer_many(self, rows: Sequence[Row]) -> bytes:
        probabilities = await self.probabilities(rows)
        predictions = [self._prediction(p) for p in probabilities]
        return orjson.dumps({"predictions": predictions, "model_version": self.version})
