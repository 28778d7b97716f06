"""The hot path (api/hot_path.py) keeps FastAPI's contract: the same OpenAPI schema, the
same answers byte for byte, the same metrics, exemplars and spans."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from api.hot_path import PredictHotPath
from api.main import create_app
from api.schemas import Penguin
from api.settings import ApiSettings
from api.tracing import build_tracer_provider
from tests.support import PENGUIN, registry_of

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SAMPLED = f"00-{TRACE_ID}-b7ad6b7169203331-01"
JSON = {"content-type": "application/json"}


def _raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def _chunks() -> Iterator[bytes]:
    for _ in range(10):
        yield b" " * 1000


# (path, body, headers): every kind of answer the two endpoints give.
REQUESTS: list[tuple[str, Any, dict[str, str]]] = [
    ("/predict", _raw(PENGUIN), JSON),
    ("/predict", _raw({**PENGUIN, "sex": None}), JSON),
    ("/predict/batch", _raw({"instances": [PENGUIN] * 3}), JSON),
    ("/predict", _raw({**PENGUIN, "island": "Mars", "colour": "blue"}), JSON),
    ("/predict", _raw([PENGUIN]), JSON),
    ("/predict", b'{"island": "Dream", "bill_length_mm": NaN}', JSON),
    ("/predict", b'{"island": ', JSON),
    ("/predict", b"", JSON),
    ("/predict", _raw({f"k{i}": i for i in range(500)}), JSON),
    ("/predict", _raw(PENGUIN), {"content-type": "text/plain"}),
    ("/predict", _raw(PENGUIN), {}),
    ("/predict", _raw(PENGUIN), {"content-type": "application/json; charset=utf-8"}),
    ("/predict/batch", _raw({"instances": []}), JSON),
    ("/predict/batch", _raw({"instances": [PENGUIN, {**PENGUIN, "island": 1}]}), JSON),
    ("/predict/batch", _raw({"instances": [PENGUIN] * 40}), JSON),
    ("/predict", _raw({**PENGUIN, "bill_length_mm": 10**30}), JSON),
]


@pytest.fixture
def pair(make_client: Callable[..., TestClient]) -> tuple[TestClient, TestClient]:
    """The same app with the hot path and without it (FastAPI's route), 2 KB body cap."""
    return make_client(max_body_bytes=2048), make_client(max_body_bytes=2048, hot_path=False)


def _uses_hot_path(client: TestClient) -> bool:
    layer = client.app.middleware_stack
    while layer is not None:
        if isinstance(layer, PredictHotPath):
            return True
        layer = getattr(layer, "app", None)
    return False


def test_the_pair_really_differs_in_the_path_taken(pair: tuple[TestClient, TestClient]) -> None:
    hot, routed = pair

    assert _uses_hot_path(hot)
    assert not _uses_hot_path(routed)


def test_openapi_schema_of_the_hot_path_equals_fastapis(
    pair: tuple[TestClient, TestClient],
) -> None:
    hot, routed = pair

    schema = hot.get("/openapi.json").json()

    assert schema == routed.get("/openapi.json").json()
    # The hot path validates with the very models the schema documents.
    served = {s.path: s.body.model for s in _hot_path(hot)._served.values()}
    assert served["/predict"] is Penguin
    documented = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert documented["application/json"]["schema"] == {"$ref": "#/components/schemas/Penguin"}
    batch_ref = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    assert batch_ref.rsplit("/", 1)[1] == served["/predict/batch"].__name__
    assert hot.get("/docs").status_code == 200


def _hot_path(client: TestClient) -> PredictHotPath:
    layer = client.app.middleware_stack
    while not isinstance(layer, PredictHotPath):
        layer = layer.app
    return layer


@pytest.mark.parametrize(("path", "body", "headers"), REQUESTS)
def test_hot_path_answers_byte_for_byte_as_fastapi(
    pair: tuple[TestClient, TestClient], path: str, body: bytes, headers: dict[str, str]
) -> None:
    hot, routed = pair

    expected = routed.post(path, content=body, headers=headers)
    answer = hot.post(path, content=body, headers=headers)

    assert answer.status_code == expected.status_code
    assert answer.content == expected.content
    assert answer.headers.get("content-type") == expected.headers.get("content-type")
    assert answer.headers.get("content-length") == expected.headers.get("content-length")


def test_chunked_body_over_the_limit_gets_the_same_413(
    pair: tuple[TestClient, TestClient],
) -> None:
    hot, routed = pair

    expected = routed.post("/predict", content=_chunks(), headers=JSON)
    answer = hot.post("/predict", content=_chunks(), headers=JSON)

    assert answer.status_code == expected.status_code == 413
    assert answer.content == expected.content


def _http_samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """HTTP metric samples of the prediction handlers, latency sums left out (timing)."""
    samples = {}
    for family in registry_of(client).collect():
        if not family.name.startswith("http_request"):
            continue
        for sample in family.samples:
            if sample.labels.get("handler", "").startswith("/predict") and not (
                sample.name.endswith("_sum")
            ):
                key = (sample.name, tuple(sorted(sample.labels.items())))
                # Which bucket a latency lands in is timing; the total is not.
                if sample.name.endswith("_bucket") and sample.labels["le"] != "+Inf":
                    continue
                samples[key] = sample.value
    return samples


def test_hot_path_records_the_same_http_metrics(pair: tuple[TestClient, TestClient]) -> None:
    hot, routed = pair

    for client in pair:
        for path, body, headers in REQUESTS:
            client.post(path, content=body, headers=headers)

    expected = _http_samples(routed)
    assert {name for (name, _) in expected} >= {
        "http_requests_total",
        "http_request_duration_seconds_count",
        "http_requests_inprogress",
    }
    assert _http_samples(hot) == expected
    statuses = {
        dict(labels)["status"]
        for (name, labels), value in expected.items()
        if name == "http_requests_total" and value
    }
    assert statuses == {"200", "413", "415", "422"}


@pytest.fixture
def traced_pair(model_dir) -> Iterator[tuple[tuple[TestClient, InMemorySpanExporter], ...]]:
    """Both paths with every new trace sampled, each with its own span store."""
    made = []
    for hot_path in (True, False):
        settings = ApiSettings(
            model_dir=model_dir,
            replica="test-1",
            config="r1-c1.0-m1g",
            hot_path=hot_path,
            traces_sampler="parentbased_always_on",
        )
        spans = InMemorySpanExporter()
        provider = build_tracer_provider(settings, processors=[SimpleSpanProcessor(spans)])
        app = create_app(settings, registry=CollectorRegistry(), tracer_provider=provider)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        made.append((client, spans))
    yield tuple(made)
    for client, _ in made:
        client.__exit__(None, None, None)


def _shape(spans: InMemorySpanExporter) -> list[tuple[Any, ...]]:
    return sorted(
        (
            span.name,
            span.kind.name,
            span.parent.span_id if span.parent is not None and span.parent.is_remote else 0,
            span.status.status_code.name,
            tuple(sorted((span.attributes or {}).items())),
        )
        for span in spans.get_finished_spans()
    )


def test_hot_path_makes_the_same_spans_as_fastapi(traced_pair) -> None:
    (hot, hot_spans), (routed, routed_spans) = traced_pair

    for client in (hot, routed):
        client.post("/predict", json=PENGUIN, headers={"traceparent": SAMPLED})
        client.post("/predict", json={**PENGUIN, "island": "Mars"})
        client.post("/predict/batch", json={"instances": [PENGUIN] * 2})

    assert _shape(hot_spans) == _shape(routed_spans)
    names = [span.name for span in hot_spans.get_finished_spans()]
    assert names.count("POST /predict") == 2
    assert names.count("model.inference") == 2


def test_a_new_trace_carries_the_id_the_sampler_accepted(model_dir) -> None:
    settings = ApiSettings(
        model_dir=model_dir, traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.5
    )
    spans = InMemorySpanExporter()
    provider = build_tracer_provider(settings, processors=[SimpleSpanProcessor(spans)])
    app = create_app(settings, registry=CollectorRegistry(), tracer_provider=provider)

    with TestClient(app) as client:
        for _ in range(40):
            assert client.post("/predict", json=PENGUIN).status_code == 200
        exposition = client.get("/metrics", headers={"accept": "application/openmetrics-text"}).text

    servers = [s for s in spans.get_finished_spans() if s.name == "POST /predict"]
    # The ratio sampler keeps a trace when the id's low 64 bits are under its bound: the
    # id drawn before the span must be the one the span carries. 40 requests at 1/2 leave
    # none sampled with odds of 1 in 10^12.
    bound = round(0.5 * (1 << 64))
    assert servers
    assert all(s.context.trace_id & ((1 << 64) - 1) < bound for s in servers)
    assert len({s.context.trace_id for s in servers}) == len(servers)
    exemplar_ids = {
        part.split('"')[1]
        for line in exposition.splitlines()
        if line.startswith("http_request_duration_seconds_bucket") and "# {" in line
        for part in line.split("# {")[1].split(",")
        if part.startswith("trace_id=")
    }
    assert exemplar_ids
    assert exemplar_ids <= {format(s.context.trace_id, "032x") for s in servers}


def test_unsampled_requests_build_no_span_at_all(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracer = _hot_path(client).tracer
    assert tracer is not None
    started: list[str] = []
    real_start = tracer._tracer.start_span

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        started.append(name)
        return real_start(name, *args, **kwargs)

    monkeypatch.setattr(tracer._tracer, "start_span", counting)
    unsampled = f"00-{TRACE_ID}-b7ad6b7169203331-00"

    for _ in range(20):
        assert client.post("/predict", json=PENGUIN).status_code == 200
        assert (
            client.post("/predict", json=PENGUIN, headers={"traceparent": unsampled}).status_code
            == 200
        )
    assert started == []
    client.post("/predict", json=PENGUIN, headers={"traceparent": SAMPLED})
    # The server span first; the model's span follows where the tracer is shared.
    assert started[0] == "POST /predict"
    assert set(started) <= {"POST /predict", "model.inference"}
