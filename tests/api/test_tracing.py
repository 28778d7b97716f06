from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from api.settings import ApiSettings
from api.tracing import build_sampler
from tests.support import PENGUIN

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def test_traceparent_continues_into_server_and_inference_spans(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    response = client.post(
        "/predict", json=PENGUIN, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    )

    assert response.status_code == 200
    finished = {span.name: span for span in spans.get_finished_spans()}
    server = finished["POST /predict"]
    inference = finished["model.inference"]
    assert server.kind == SpanKind.SERVER
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert format(server.parent.span_id, "016x") == PARENT_ID
    assert server.parent.is_remote
    assert server.attributes["http.route"] == "/predict"
    assert server.attributes["http.response.status_code"] == 200
    assert inference.context.trace_id == server.context.trace_id
    assert inference.parent.span_id == server.context.span_id
    assert inference.attributes["model.batch_size"] == 1
    assert inference.attributes["model.engine"] == "onnx"
    assert inference.attributes["model.version"].startswith("rf-")


def test_caller_not_sampling_means_no_spans(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.post("/predict", json=PENGUIN, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    client.post("/predict", json=PENGUIN)

    assert spans.get_finished_spans() == ()


def test_batch_inference_span_records_the_batch_size(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    client.post(
        "/predict/batch",
        json={"instances": [PENGUIN] * 12},
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
    )

    inference = next(s for s in spans.get_finished_spans() if s.name == "model.inference")
    assert inference.attributes["model.batch_size"] == 12


def test_sampler_follows_the_standard_variables(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")

    settings = ApiSettings()

    assert settings.traces_sampler == "traceidratio"
    description = build_sampler(
        settings.traces_sampler, settings.traces_sampler_arg
    ).get_description()
    assert "0.25" in description


def test_sampling_defaults_to_one_percent_of_new_traces(monkeypatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)

    settings = ApiSettings()

    assert settings.traces_sampler == "parentbased_traceidratio"
    assert settings.traces_sampler_arg == 0.01


def test_unknown_sampler_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "sometimes")

    with pytest.raises(ValidationError, match="parentbased_always_on"):
        ApiSettings()
