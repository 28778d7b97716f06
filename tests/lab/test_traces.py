"""Stored traces: the replica's span file, `load_trace`, `render_tree`, `python -m lab trace`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from api.tracing import RotatingLines, file_span_processor
from lab.errors import LabError
from lab.traces import Span, load_trace, normalise_trace_id, render_tree
from tests.support import PENGUIN, PYTHON, REPO, running_replica, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _line(span_id: str, parent: str | None, name: str, start: int, end: int, **resource) -> str:
    return json.dumps(
        {
            "trace_id": TRACE,
            "span_id": span_id,
            "parent_span_id": parent,
            "name": name,
            "kind": "SERVER" if parent else "CLIENT",
            "start_time_unix_nano": start,
            "end_time_unix_nano": end,
            "status": "UNSET",
            "attributes": {"http.response.status_code": 200} if parent else {},
            "resource": resource,
        }
    )


def test_tree_joins_spans_of_several_files_under_their_parents(tmp_path: Path) -> None:
    (tmp_path / "locust-7.jsonl").write_text(
        _line("a" * 16, None, "POST /predict", 0, 9_000_000, **{"service.name": "locust"}) + "\n"
    )
    replica = {"service.name": "penguin-api", "service.instance.id": "api-1"}
    (tmp_path / "api-1.jsonl.1").write_text(
        _line("b" * 16, "a" * 16, "POST /predict", 1_000_000, 5_000_000, **replica) + "\n"
    )
    (tmp_path / "api-1.jsonl").write_text(
        "not json at all " + TRACE + "\n"
        + _line("c" * 16, "b" * 16, "model.inference", 2_000_000, 3_000_000, **replica) + "\n"
        + _line("c" * 16, "b" * 16, "model.inference", 2_000_000, 3_000_000, **replica)[:40]
    )  # fmt: skip

    spans = load_trace(tmp_path, TRACE.upper())
    text = render_tree(spans)

    assert [s.name for s in spans] == ["POST /predict", "POST /predict", "model.inference"]
    lines = text.splitlines()
    assert "3 spans from 2 processes" in lines[0]
    assert lines[1].startswith("POST /predict [CLIENT] 9.00 ms at +0.00 ms  (locust)")
    assert lines[2].startswith("└─ POST /predict [SERVER] 4.00 ms at +1.00 ms")
    assert "(penguin-api api-1)" in lines[2]
    assert "http.response.status_code=200" in lines[2]
    assert lines[3].startswith("   └─ model.inference [SERVER] 1.00 ms at +2.00 ms")


def test_a_parent_not_stored_is_named(tmp_path: Path) -> None:
    spans = [
        Span(TRACE, "b" * 16, "f" * 16, "POST /predict", "SERVER", 0, 2_000_000, "UNSET"),
    ]

    text = render_tree(spans)

    assert f"(parent {'f' * 16} not stored)" in text


def test_unknown_id_is_empty_and_missing_files_or_bad_ids_say_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "api-1.jsonl").write_text(
        _line("b" * 16, None, "POST /predict", 0, 1, **{"service.name": "x"}) + "\n"
    )

    assert load_trace(tmp_path, "1" * 32) == []
    with pytest.raises(LabError, match="no trace files"):
        load_trace(tmp_path / "absent", TRACE)
    with pytest.raises(LabError, match="32 hexadecimal digits"):
        normalise_trace_id("not-a-trace")
    assert normalise_trace_id(f"0x{TRACE.upper()}") == TRACE


def test_span_file_rotates_within_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "api-1.jsonl"
    lines = RotatingLines(path, max_bytes=4096)

    for index in range(100):
        lines.write(f"{index:099d}\n")
    lines.flush()
    lines.close()

    rotated = path.with_name("api-1.jsonl.1")
    assert path.stat().st_size <= 4096
    assert rotated.stat().st_size <= 4096
    assert path.read_text().splitlines()[-1] == f"{99:099d}"


def _lab_trace(trace_id: str, trace_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "lab", "trace", trace_id, "--dir", str(trace_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def traced_replica(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """One real replica writing its sampled spans where the native runtime puts them,
    shared by this module's tests (each reads only its own trace ids)."""
    traces = tmp_path_factory.mktemp("run") / "traces"
    with running_replica(
        model_dir,
        API_LOG_LEVEL="warning",
        API_REPLICA="api-1",
        API_TRACES_FILE=str(traces / "api-1.jsonl"),
        # The exporter's standard variable: spans reach the file within 0.2 s, not 5 s.
        OTEL_BSP_SCHEDULE_DELAY="200",
        API_DRAIN_SECONDS="0",
    ) as (url, _):
        yield url, traces


def test_exemplar_trace_id_opens_the_stored_tree_client_app_model(
    traced_replica: tuple[str, Path],
) -> None:
    url, traces = traced_replica
    # The client side as Locust records it natively: its own file, the same exporter.
    provider = TracerProvider(resource=Resource.create({"service.name": "locust"}))
    provider.add_span_processor(file_span_processor(traces / "locust-1.jsonl", 1 << 20))
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("POST /predict", kind=SpanKind.CLIENT) as client_span:
        headers: dict[str, str] = {}
        inject(headers)
        assert int(headers["traceparent"][-2:], 16) & 1, "the client span is sampled"
        answer = httpx.post(f"{url}/predict", json=PENGUIN, headers=headers, timeout=10)
    provider.shutdown()
    assert answer.status_code == 200
    trace_id = format(client_span.get_span_context().trace_id, "032x")
    exposition = httpx.get(
        f"{url}/metrics", headers={"accept": "application/openmetrics-text"}, timeout=10
    ).text
    exemplar = next(
        line
        for line in exposition.splitlines()
        if line.startswith('http_request_duration_seconds_bucket{handler="/predict"')
        and "# {" in line
    )
    assert f'trace_id="{trace_id}"' in exemplar

    # The replica's exporter writes in the background, on its schedule.
    wait_until(
        lambda: len(load_trace(traces, trace_id)) == 3, timeout=15, what="the replica's spans"
    )
    shown = _lab_trace(trace_id, traces)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "3 spans from 2 processes" in lines[0]
    assert lines[1].startswith("POST /predict [CLIENT]") and "(locust " in lines[1]
    assert lines[2].startswith("└─ POST /predict [SERVER]") and "(penguin-api api-1)" in lines[2]
    assert lines[3].startswith("   └─ model.inference [INTERNAL]")
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_lab_trace_of_an_unknown_id_says_so_in_one_line(traced_replica: tuple[str, Path]) -> None:
    url, traces = traced_replica
    httpx.post(
        f"{url}/predict",
        json=PENGUIN,
        headers={"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
        timeout=10,
    )
    wait_until(lambda: load_trace(traces, TRACE), timeout=15, what="the replica's spans")

    shown = _lab_trace("1" * 32, traces)

    assert shown.returncode != 0
    assert shown.stderr.startswith("lab: trace 11111111111111111111111111111111 is in none of")
    assert "Traceback" not in shown.stderr
