"""Locust against the native stack: stats in Prometheus, clean Pushgateway, SLO gate, traces."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.lab.runtimes.native.lab import NativeLab
from tests.load.locust_runner import LOCUST, run_locust
from tests.otlp_receiver import OtlpReceiver
from tests.support import REPO, free_port, wait_until

pytestmark = pytest.mark.slow


def app_predictions(lab: NativeLab, at: float | None = None) -> float:
    query = 'sum(http_requests_total{job="api", handler="/predict", status="200"})'
    return lab.prometheus.value(query, time=at, default=0.0) or 0.0


def pushgateway_groups(lab: NativeLab) -> list[dict[str, str]]:
    body = httpx.get(
        f"http://127.0.0.1:{lab.ports['pushgateway']}/api/v1/metrics", timeout=5
    ).json()
    return [group["labels"] for group in body["data"]]


@pytest.fixture(scope="module")
def healthy_run(lab: NativeLab) -> Iterator[dict]:
    """One 30 s healthy run, shared by the checks on what it leaves behind."""
    wait_until(
        lambda: lab.prometheus.value("count(up == 1)") == 6, timeout=20, what="all 6 targets up"
    )
    before = app_predictions(lab)
    started = time.time()
    result = run_locust(
        lab, "-u", "20", "-r", "10", "-t", "30s", "--run-id", "healthy-30s", "--think-time", "0.2"
    )
    time.sleep(3)
    yield {"result": result, "before": before, "started": started, "ended": time.time()}


def last(lab: NativeLab, query: str) -> list:
    """Series of a finished run: they are stale now, so look back over the run."""
    return lab.prometheus.query(f"last_over_time({query}[10m])")


def test_healthy_run_passes_the_slo_gate(healthy_run: dict) -> None:
    result = healthy_run["result"]

    assert result.returncode == 0, result.stderr[-3000:]
    assert "=== capacity lab summary: run healthy-30s" in result.stderr
    assert "verdict: PASS" in result.stderr
    assert "P95" in result.stderr


def test_run_leaves_counter_histogram_and_users_in_prometheus(
    lab: NativeLab, healthy_run: dict
) -> None:
    run = 'run_id="healthy-30s"'
    counters = last(lab, f'locust_requests_total{{{run}, name="POST /predict", result="success"}}')
    buckets = {
        s.labels["le"] for s in last(lab, f"locust_request_duration_seconds_bucket{{{run}}}")
    }
    users = last(lab, f"locust_users{{{run}}}")

    assert counters and counters[0].value > 100
    assert counters[0].labels["config"] == "r2-c1.0-m1g"
    assert counters[0].labels["job"] == "locust"
    assert {"1.0", "60.0", "+Inf"} <= buckets
    assert users
    peak = lab.prometheus.value(f"max_over_time(locust_users{{{run}}}[10m])")
    assert peak == 20


def test_client_and_app_count_the_same_predictions(lab: NativeLab, healthy_run: dict) -> None:
    client = sum(
        s.value
        for s in last(
            lab,
            'locust_requests_total{run_id="healthy-30s", name="POST /predict", result="success"}',
        )
    )
    app = app_predictions(lab) - healthy_run["before"]

    assert client > 300
    assert abs(app - client) / client <= 0.01, (client, app)


def test_pushgateway_holds_nothing_of_the_finished_run(lab: NativeLab, healthy_run: dict) -> None:
    groups = pushgateway_groups(lab)

    assert not [g for g in groups if g.get("run_id") == "healthy-30s"], groups


def test_slo_gate_fails_a_run_with_half_invalid_payloads(lab: NativeLab) -> None:
    result = run_locust(
        lab, "-u", "10", "-r", "10", "-t", "8s", "--run-id", "broken", "--invalid-share", "0.5"
    )

    assert result.returncode == 3, result.stderr[-3000:]
    assert "check error ratio <= 1.00%: FAIL" in result.stderr
    assert "verdict: FAIL" in result.stderr
    failures = last(lab, 'locust_request_failures_total{run_id="broken"}')
    assert any("422" in s.labels["exception"] for s in failures)


def test_p95_gate_uses_successful_requests(lab: NativeLab) -> None:
    result = run_locust(
        lab, "-u", "5", "-r", "5", "-t", "5s", "--run-id", "strict", "--check-p95", "0.0001"
    )

    assert result.returncode == 3
    assert "check P95 (all requests) <= 0.0001 s: FAIL" in result.stderr


def test_pushgateway_down_does_not_stop_the_run(lab: NativeLab) -> None:
    command_gateway = f"http://127.0.0.1:{free_port()}"

    result = run_locust(
        lab,
        "-u",
        "5",
        "-r",
        "5",
        "-t",
        "6s",
        "--run-id",
        "no-gateway",
        "--pushgateway",
        command_gateway,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("cannot push to the Pushgateway") == 1
    assert "Traceback" not in result.stderr
    assert "verdict: PASS" in result.stderr


def test_several_processes_push_one_group_each(lab: NativeLab) -> None:
    result = run_locust(
        lab, "-u", "10", "-r", "10", "-t", "8s", "--run-id", "multi", "--processes", "2"
    )

    assert result.returncode == 0, result.stderr[-3000:]
    instances = {s.labels["instance"] for s in last(lab, 'locust_requests_total{run_id="multi"}')}
    assert len(instances) == 2
    assert not [g for g in pushgateway_groups(lab) if g.get("run_id") == "multi"]


def test_master_and_workers_as_separate_processes(lab: NativeLab) -> None:
    port = free_port()
    env = {**lab.env}
    workers = [
        subprocess.Popen(
            [LOCUST, "--config", "locust/locust.conf", "--worker", "--master-port", str(port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]  # fmt: skip
    try:
        result = run_locust(
            lab, "--master", "--master-bind-port", str(port), "--expect-workers", "2",
            "-u", "10", "-r", "10", "-t", "8s", "--run-id", "distributed",
        )  # fmt: skip
    finally:
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    assert result.returncode == 0, result.stderr[-3000:]
    instances = {
        s.labels["instance"] for s in last(lab, 'locust_requests_total{run_id="distributed"}')
    }
    assert len(instances) == 2
    users = last(lab, 'locust_users{run_id="distributed"}')
    assert len(users) == 1
    assert users[0].labels["instance"].endswith("-master")


def test_trace_started_by_locust_continues_in_the_api(model_dir: Path, tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        lab = NativeLab(run_dir=tmp_path / "run", model_dir=model_dir)
        lab.cli("up", REPLICAS="1", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
        try:
            result = run_locust(
                lab, "-u", "2", "-r", "2", "-t", "4s", "--run-id", "traced", "--otel",
                "--pushgateway", "",
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                OTEL_TRACES_SAMPLER="always_on",
                OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr[-3000:]

            def linked() -> bool:
                spans = receiver.snapshot()
                clients = {
                    s.span_id: s
                    for s in spans
                    if s.service == "locust" and s.name == "POST /predict"
                }
                return any(
                    s.service == "penguin-api"
                    and s.parent_span_id in clients
                    and s.trace_id == clients[s.parent_span_id].trace_id
                    for s in spans
                )

            wait_until(
                linked, timeout=20, what="an API server span whose parent is a Locust client span"
            )
        finally:
            lab.cli("down", check=False)
    names = {(s.service, s.name) for s in receiver.snapshot()}
    assert ("penguin-api", "POST /predict") in names
    assert ("penguin-api", "model.inference") in names
