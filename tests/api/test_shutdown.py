"""SIGTERM to a live replica: readiness fails at once, in-flight work completes."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.serve import uvicorn_config
from api.settings import ApiSettings
from tests.support import PENGUIN, PYTHON, REPO, api_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.slow


def start_replica(model_dir: Path, port: int, drain: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [PYTHON, "-m", "api"],
        cwd=REPO,
        env=api_env(
            model_dir, port, API_DRAIN_SECONDS=str(drain), API_SHUTDOWN_TIMEOUT_SECONDS="10"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200,
        timeout=30,
        what="the replica to become ready",
    )
    return process


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), json.loads(body)


def test_sigterm_turns_ready_503_while_in_flight_request_completes(model_dir: Path) -> None:
    port = free_port()
    process = start_replica(model_dir, port, drain=1.5)
    try:
        body = json.dumps(PENGUIN).encode()
        in_flight = socket.create_connection(("127.0.0.1", port), timeout=20)
        in_flight.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.2)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)

        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 503,
            timeout=1.0,
            what="/ready to answer 503",
            interval=0.02,
        )
        during_drain = httpx.post(f"http://127.0.0.1:{port}/predict", json=PENGUIN)
        assert during_drain.status_code == 200
        # Past the drain period the server no longer listens, and the request that was
        # in flight when the signal came still gets its answer.
        wait_until(lambda: time.monotonic() - signalled > 2.0, timeout=5, what="the drain to end")
        in_flight.sendall(body[10:])
        status, answer = read_response(in_flight)
        assert status == 200
        assert answer["species"] in {"Adelie", "Chinstrap", "Gentoo"}
        assert process.wait(timeout=15) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health")
    finally:
        stop_process(process)
    output = process.stdout.read() if process.stdout else ""
    assert "SIGTERM received: draining for 1.5 s" in output


def test_second_signal_skips_the_drain(model_dir: Path) -> None:
    port = free_port()
    process = start_replica(model_dir, port, drain=30)
    try:
        process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 503,
            timeout=2,
            what="/ready to answer 503",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        stop_process(process)


@pytest.mark.parametrize("seconds", [0.0, 0.5, 10.0])
def test_graceful_shutdown_timeout_is_passed_as_given(model_dir: Path, seconds: float) -> None:
    settings = ApiSettings(model_dir=model_dir, shutdown_timeout_seconds=seconds)

    config = uvicorn_config(create_app(settings), settings)

    # Never None: uvicorn would then wait for in-flight requests forever.
    assert config.timeout_graceful_shutdown == seconds


@pytest.mark.parametrize("seconds", ["0", "0.5"])
def test_short_shutdown_timeout_cancels_a_stuck_request_and_exits(
    model_dir: Path, seconds: str
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "api"],
        cwd=REPO,
        env=api_env(model_dir, port, API_DRAIN_SECONDS="0", API_SHUTDOWN_TIMEOUT_SECONDS=seconds),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200,
            timeout=30,
            what="the replica to become ready",
        )
        # A request whose body never comes: it stays in flight until it is cancelled.
        stuck = socket.create_connection(("127.0.0.1", port), timeout=20)
        stuck.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)

        # Before the fix, 0 and 0.5 became "no timeout" and the replica waited forever.
        assert process.wait(timeout=15) == 0
        # Cancelled, it gets uvicorn's 500 (or the closed connection), never a prediction.
        with contextlib.suppress(ConnectionResetError):
            reply = stuck.recv(65536)
            assert reply == b"" or reply.startswith(b"HTTP/1.1 500"), reply
        stuck.close()
    finally:
        stop_process(process)
    output = process.stdout.read() if process.stdout else ""
    assert "timeout graceful shutdown exceeded" in output
