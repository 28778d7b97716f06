"""Helpers shared by the tests: free ports, waiting on readiness, processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# The repository's root, defined once for the lab and its tests.
from lab.core import REPO as REPO

PYTHON = sys.executable

PENGUIN: dict[str, Any] = {
    "island": "Torgersen",
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": "male",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the thing waited on is not up yet
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def strict_json(text: str) -> Any:
    """Parse JSON the way the RFC does: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=refuse)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def api_env(model_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "API_MODEL_DIR": str(model_dir),
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@contextmanager
def running_replica(model_dir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """One real replica (`python -m api`) on a free port with `env` added, its output
    discarded: its URL and process once it answers /ready, stopped on leaving."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "api"],
        cwd=REPO,
        env=api_env(model_dir, port, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200,
            timeout=60,
            what="the replica to become ready",
        )
        yield url, process
    finally:
        stop_process(process)


def serve_until_exit(
    model_dir: Path, port: int | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Start one replica on `model_dir` (on `port`, by default a free one) in the
    foreground and wait for it to exit: for models or settings it must refuse (it would
    serve forever otherwise; the timeout says so)."""
    return subprocess.run(
        [PYTHON, "-m", "api"],
        cwd=REPO,
        env=api_env(model_dir, free_port() if port is None else port, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def registry_of(client: Any) -> Any:
    """The metrics registry of a TestClient's app."""
    return client.app.state.metrics.registry
