"""The simulated client: realistic penguins, weighted tasks, every answer checked.

Each request carries a W3C `traceparent` from a client span, so the API's traces start
here. Spans come from the tracer provider Locust sets up with `--otel` (then they are
exported) or, without it, from a local provider that creates trace context and, when
LAB_TRACES_DIR is set (the native runtime sets it), writes sampled spans to a file there;
new traces are sampled at OTEL_TRACES_SAMPLER_ARG (default 1 %, like the API) and the API
follows.
"""

from __future__ import annotations

import math
import os
import random
import socket
from typing import Any

from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from lab.penguins import invalid, sample
from locust import FastHttpUser, between, task

SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
PREDICT = "POST /predict"
BATCH = "POST /predict/batch"
READY = "GET /ready"

_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """Locust's provider when --otel set one up, else a local one that only samples."""
    global _tracer
    if _tracer is None:
        provider = trace.get_tracer_provider()
        if not hasattr(provider, "add_span_processor"):
            ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "0.01"))
            provider = TracerProvider(
                sampler=ParentBased(TraceIdRatioBased(ratio)), resource=_resource()
            )
            traces_dir = os.environ.get("LAB_TRACES_DIR")
            if traces_dir:
                # The native runtime keeps sampled spans in files (lab/traces.py); the
                # client's span is the root of each trace there.
                from pathlib import Path

                from api.tracing import file_span_processor

                path = Path(traces_dir) / f"locust-{os.getpid()}.jsonl"
                provider.add_span_processor(file_span_processor(path, 64 * 1024 * 1024))
        _tracer = provider.get_tracer("capacity-lab.locust")
    return _tracer


def _resource() -> Resource:
    return Resource.create(
        {"service.name": "locust", "service.instance.id": f"{socket.gethostname()}-{os.getpid()}"}
    )


def check_prediction(answer: dict[str, Any]) -> str | None:
    """Why a prediction is wrong, or None when it is a valid answer."""
    species = answer.get("species")
    probabilities = answer.get("probabilities") or {}
    if species not in SPECIES:
        return f"unknown species {species!r}"
    if set(probabilities) != SPECIES:
        return "probabilities do not cover the three species"
    if not math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-4):
        return "probabilities do not sum to 1"
    return None


class PenguinUser(FastHttpUser):
    """One client of the API. Think time and the open model come from the options."""

    abstract = False

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.rng = random.Random()
        self.invalid_share = getattr(options, "invalid_share", 0.0) if options else 0.0
        self.batch_size = max(2, getattr(options, "batch_size", 8) if options else 8)
        if self._open(options):
            # Even the first task waits for an arrival: no burst when users spawn. Through
            # wait(), so a user waiting here counts as waiting and stops at once.
            self.wait()

    def wait_time(self) -> float:  # type: ignore[override]
        options = self.environment.parsed_options
        if self._open(options):
            self.environment.lab_arrivals.take()
            return 0.0
        think = options.think_time if options is not None else 1.0
        if not hasattr(self, "_think"):
            self._think = between(0.5 * think, 1.5 * think)
        return self._think(self)

    def _open(self, options: object) -> bool:
        """Open model: tasks start when the process's arrival clock says (lab_arrivals)."""
        return (
            options is not None
            and getattr(options, "shape", "") == "open"
            and getattr(self.environment, "lab_arrivals", None) is not None
        )

    def _post(self, path: str, name: str, body: Any, expect_invalid: bool = False) -> None:
        headers = {"content-type": "application/json"}
        with tracer().start_as_current_span(name, kind=SpanKind.CLIENT) as span:
            inject(headers)
            with self.client.post(
                path, json=body, name=name, headers=headers, catch_response=True
            ) as response:
                span.set_attribute("http.response.status_code", response.status_code or 0)
                if response.status_code == 422 and expect_invalid:
                    field = _first_field(response)
                    response.failure(f"HTTP 422 invalid {field} (deliberate)")
                elif response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                else:
                    self._judge(response, name)

    def _judge(self, response: Any, name: str) -> None:
        try:
            body = response.json()
        except ValueError:
            response.failure("answer is not JSON")
            return
        answers = body.get("predictions", []) if name == BATCH else [body]
        for answer in answers:
            problem = check_prediction(answer)
            if problem:
                response.failure(problem)
                return

    @task(8)
    def predict(self) -> None:
        if self.invalid_share and self.rng.random() < self.invalid_share:
            self._post("/predict", PREDICT, invalid(self.rng), expect_invalid=True)
        else:
            self._post("/predict", PREDICT, sample(self.rng))

    @task(1)
    def predict_batch(self) -> None:
        count = self.rng.randint(2, self.batch_size)
        self._post("/predict/batch", BATCH, {"instances": [sample(self.rng) for _ in range(count)]})

    @task(1)
    def ready(self) -> None:
        with self.client.get("/ready", name=READY, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")


def _first_field(response: Any) -> str:
    try:
        return response.json()["detail"][0]["field"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "field"
