"""`python -m lab watch` (`make watch`) against a stand-in Prometheus answering the
recording rules' names: one frame, the SLO colours, Ctrl-C, and Prometheus unreachable."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from rich.console import Console
from rich.table import Table

from lab.watch import render, take_snapshot
from monitoring.prom import Prometheus
from tests.support import PYTHON, REPO, free_port, wait_until

CONFIG = "r2-c1.0-m1g"
# Recorded name (with its matcher) -> samples: (labels, value).
ANSWERS: dict[str, list[tuple[dict[str, str], float]]] = {
    'config:requests:rate1m{layer="client"}': [({"config": CONFIG}, 12.5)],
    'config:requests:rate1m{layer="server"}': [({"config": CONFIG}, 12.0)],
    'config:error_ratio:rate1m{layer="client"}': [({"config": CONFIG}, 0.02)],
    'config:slo_good:ratio_rate1m{layer="client"}': [({"config": CONFIG}, 0.97)],
    "config:replicas_up:count": [({"config": CONFIG}, 2)],
    "config:latency_seconds:p95": [
        ({"config": CONFIG, "layer": "client"}, 1.5),
        ({"config": CONFIG, "layer": "edge"}, 0.02),
        ({"config": CONFIG, "layer": "server"}, 0.015),
        ({"config": CONFIG, "layer": "model"}, math.nan),
    ],
    "replica:requests:rate1m": [
        ({"config": CONFIG, "replica": "replica-1"}, 6.0),
        ({"config": CONFIG, "replica": "replica-2"}, 6.5),
    ],
    "replica:latency_seconds:p95": [({"config": CONFIG, "replica": "replica-1"}, 0.012)],
    "replica:cpu_usage:ratio_limit": [({"config": CONFIG, "replica": "replica-1"}, 0.95)],
    "replica:memory_usage:ratio_limit": [({"config": CONFIG, "replica": "replica-1"}, 0.1)],
    "replica:cpu_throttled_periods:ratio_rate1m": [
        ({"config": CONFIG, "replica": "replica-1"}, 0.3)
    ],
}


class FakePrometheus(BaseHTTPRequestHandler):
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query).get("query", [""])[0]
        type(self).queries.append(query)
        result = [
            {"metric": labels, "value": [0, "NaN" if math.isnan(v) else str(v)]}
            for labels, v in ANSWERS.get(query, [])
        ]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    FakePrometheus.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prometheus(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def watch_env(tmp_path: Path, prometheus_url: str) -> dict[str, str]:
    port = urlparse(prometheus_url).port
    return {
        "PATH": "/usr/bin:/bin",
        "RUNTIME": "native",
        # No stack in this folder: the runtime's addresses are the settings'.
        "LAB_RUN_DIR": str(tmp_path / "run"),
        "LAB_PROMETHEUS_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "160",
    }


def watch_once(tmp_path: Path, prometheus_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m lab watch --once` against `prometheus_url`, run to its end."""
    return subprocess.run(
        [PYTHON, "-m", "lab", "watch", "--once"],
        cwd=REPO,
        env=watch_env(tmp_path, prometheus_url),
        capture_output=True,
        text=True,
        timeout=60,
    )


def cells(table: Table, header: str) -> list[Any]:
    column = next(c for c in table.columns if c.header == header)
    return list(column.cells)


def test_one_frame_shows_the_slo_numbers_and_marks_what_is_outside(prometheus: str) -> None:
    snapshot = take_snapshot(Prometheus(prometheus))
    frame = render(snapshot, prometheus, 2)
    configs, replicas = frame.renderables[0], frame.renderables[1]
    console = Console(record=True, width=160)
    console.print(frame)
    text = console.export_text()

    assert [row.config for row in snapshot.configs] == [CONFIG]
    assert [row.replica for row in snapshot.replicas] == ["replica-1", "replica-2"]
    for shown in ("12.5", "12.0", "2.00 %", "97.00 %", "1.50 s", "20 ms", "15 ms", "12 ms"):
        assert shown in text
    assert "95.0 %" in text
    assert "30.0 %" in text
    # Outside the SLO: errors >= 1 %, client P95 >= 1 s. The edge's P95 decides nothing.
    assert cells(configs, "errors (client)")[0].style == "bold red"
    assert cells(configs, "P95 client")[0].style == "bold red"
    assert cells(configs, "P95 edge")[0].style == ""
    # NaN (no request in the window) and a missing series are shown as a dash.
    assert cells(configs, "P95 model")[0].plain == "-"
    assert cells(replicas, "P95 (server)")[1].plain == "-"


def test_watch_once_prints_one_frame_through_the_command_line(
    tmp_path: Path, prometheus: str
) -> None:
    result = watch_once(tmp_path, prometheus)

    assert result.returncode == 0, result.stderr
    assert CONFIG in result.stdout
    assert "replica-2" in result.stdout
    assert "Per replica" in result.stdout


def start_watch(tmp_path: Path, prometheus: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "lab", "watch", "--interval", "0.2"],
        cwd=REPO,
        env=watch_env(tmp_path, prometheus),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_ctrl_c_ends_the_watch_cleanly(tmp_path: Path, prometheus: str) -> None:
    process = start_watch(tmp_path, prometheus)
    try:
        # Three refreshes at least: the loop runs, then Ctrl-C.
        per_frame = len(ANSWERS)
        wait_until(
            lambda: len(FakePrometheus.queries) >= 3 * per_frame, timeout=30, what="3 frames"
        )
    finally:
        stdout, stderr = interrupt(process)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert CONFIG in stdout


def test_prometheus_going_away_mid_watch_is_shown_not_fatal(
    tmp_path: Path, server: ThreadingHTTPServer, prometheus: str
) -> None:
    process = start_watch(tmp_path, prometheus)
    try:
        wait_until(lambda: len(FakePrometheus.queries) >= len(ANSWERS), timeout=30, what="a frame")
        server.shutdown()
        server.server_close()
        # A few refreshes against nothing: the watch must go on, not exit.
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1)
    finally:
        stdout, stderr = interrupt(process)

    assert process.returncode == 0, stderr
    assert f"Prometheus at {prometheus} does not answer" in stdout
    assert "Trying again every 0.2 s" in stdout


def test_prometheus_unreachable_is_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = watch_once(tmp_path, url)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"lab: Prometheus at {url} does not answer ([Errno 111] Connection refused); "
        "is the stack up?"
    ]
