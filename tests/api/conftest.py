from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from api.main import create_app
from api.settings import ApiSettings
from api.tracing import build_tracer_provider


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> TracerProvider:
    settings = ApiSettings(traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.0)
    return build_tracer_provider(settings, processors=[SimpleSpanProcessor(spans)])


@pytest.fixture
def make_client(
    model_dir: Path, tracer_provider: TracerProvider
) -> Iterator[Callable[..., TestClient]]:
    """Build a client on a fresh app with its own metrics registry (tests read it
    with `tests.support.registry_of`); keyword arguments become settings."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = ApiSettings(
            model_dir=model_dir, replica="test-1", config="r1-c1.0-m1g", **overrides
        )
        app = create_app(settings, registry=CollectorRegistry(), tracer_provider=tracer_provider)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
