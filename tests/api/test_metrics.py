from __future__ import annotations

from fastapi.testclient import TestClient

from api.buckets import LATENCY_BUCKETS
from tests.support import PENGUIN, registry_of

SAMPLED_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def sample(client: TestClient, name: str, **labels: str) -> float:
    return registry_of(client).get_sample_value(name, labels) or 0.0


def test_metrics_count_predictions_and_expose_the_shared_buckets(client: TestClient) -> None:
    before = sample(client, "http_requests_total", handler="/predict", method="POST", status="200")
    n = 7
    for _ in range(n):
        assert client.post("/predict", json=PENGUIN).status_code == 200
    client.post("/predict", json={"island": "Mars"})

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    labels = {"handler": "/predict", "method": "POST", "status": "200"}
    assert sample(client, "http_requests_total", **labels) - before == n
    assert (
        sample(client, "http_requests_total", handler="/predict", method="POST", status="422") == 1
    )
    assert 'le="1.0"' in text
    assert 'le="60.0"' in text
    for bound in LATENCY_BUCKETS:
        assert sample(client, "http_request_duration_seconds_bucket", le=str(bound), **labels) <= n
    assert sample(client, "http_request_duration_seconds_bucket", le="60.0", **labels) == n
    per_class = [
        sample(client, "model_predictions_total", species=s)
        for s in ("Adelie", "Chinstrap", "Gentoo")
    ]
    assert sum(per_class) == n
    assert sample(client, "model_inference_seconds_count", engine="onnx") == n
    assert sample(client, "model_batch_size_sum", engine="onnx") == n


def test_model_and_deployment_info_carry_digest_and_limits(make_client) -> None:
    client = make_client(cpu_limit="0.5", memory_limit="512m")
    sha256 = client.get("/health").json()["model_sha256"]

    text = client.get("/metrics").text

    assert f'sha256="{sha256}"' in text
    info = [line for line in text.splitlines() if line.startswith("deployment_info{")]
    assert len(info) == 1
    for label in (
        'replica="test-1"',
        'config="r1-c1.0-m1g"',
        'cpu_limit="0.5"',
        'memory_limit="512m"',
    ):
        assert label in info[0]
    assert "process_cpu_seconds_total" in text
    assert "process_resident_memory_bytes" in text
    assert "replica_cpu_limit_cores" in text
    assert "http_requests_inprogress" in text


def test_metrics_endpoint_is_not_counted_and_batch_sizes_are(client: TestClient) -> None:
    client.get("/metrics")
    client.post("/predict/batch", json={"instances": [PENGUIN] * 5})

    assert (
        sample(client, "http_requests_total", handler="/metrics", method="GET", status="200") == 0
    )
    assert sample(client, "model_batch_size_bucket", engine="onnx", le="4.0") == 0
    assert sample(client, "model_batch_size_bucket", engine="onnx", le="8.0") == 1
    assert sample(client, "model_predictions_total", species="Adelie") == 5


def test_openmetrics_exposition_carries_trace_exemplars(client: TestClient) -> None:
    client.post("/predict", json=PENGUIN, headers={"traceparent": SAMPLED_PARENT})

    plain = client.get("/metrics")
    open_metrics = client.get(
        "/metrics", headers={"accept": "application/openmetrics-text;version=1.0.0"}
    )

    assert plain.headers["content-type"].startswith("text/plain")
    assert "# {" not in plain.text
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")
    exemplars = [
        line
        for line in open_metrics.text.splitlines()
        if line.startswith("http_request_duration_seconds_bucket") and "# {" in line
    ]
    assert exemplars
    assert all('trace_id="4bf92f3577b34da6a3ce929d0e0e4736"' in line for line in exemplars)


def test_unsampled_requests_carry_no_exemplar(client: TestClient) -> None:
    client.post("/predict", json=PENGUIN)

    text = client.get("/metrics", headers={"accept": "application/openmetrics-text"}).text

    assert "trace_id" not in text


def test_ready_gauge_follows_draining(client: TestClient) -> None:
    from api.main import set_draining

    assert sample(client, "replica_ready") == 1
    set_draining(client.app, True)

    assert client.get("/ready").status_code == 503
    assert client.get("/ready").json() == {"status": "draining"}
    assert sample(client, "replica_ready") == 0
    assert client.post("/predict", json=PENGUIN).status_code == 200
