"""A native stack for tests: own run folder, free ports, driven through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lab.runtimes.native.processes import find_run_processes
from monitoring.prom import Prometheus
from tests.support import PENGUIN, PYTHON, REPO, free_port


@dataclass
class NativeLab:
    run_dir: Path
    model_dir: Path
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = {
                name: free_port()
                for name in ("web", "traefik", "prometheus", "pushgateway", "dashboards")
            }
            self.ports["replica_base"] = free_port()

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LAB_RUN_DIR": str(self.run_dir),
            "LAB_WEB_PORT": str(self.ports["web"]),
            "LAB_TRAEFIK_PORT": str(self.ports["traefik"]),
            "LAB_PROMETHEUS_PORT": str(self.ports["prometheus"]),
            "LAB_PUSHGATEWAY_PORT": str(self.ports["pushgateway"]),
            "LAB_DASHBOARD_PORT": str(self.ports["dashboards"]),
            "LAB_REPLICA_BASE_PORT": str(self.ports["replica_base"]),
            "API_MODEL_DIR": str(self.model_dir),
            "LAB_SCRAPE_INTERVAL_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            "RUNTIME": "native",
        }

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [PYTHON, "-m", "lab", *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    @property
    def dashboards(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboards']}"

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(f"http://127.0.0.1:{self.ports['prometheus']}")

    def state(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "state.json").read_text())

    def traefik_servers(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.ports['traefik']}/api/http/services/api@file"
        body = httpx.get(url, timeout=2).json()
        return body.get("serverStatus") or {}

    def events(self) -> str:
        path = self.run_dir / "events.log"
        return path.read_text() if path.exists() else ""

    def pids(self) -> list[int]:
        state = self.state()
        pids = [c["proc"]["pid"] for c in state["components"].values()]
        return pids + [r["proc"]["pid"] for r in state["replicas"]]

    def supervisor_metrics(self) -> dict[tuple[str, str], float]:
        """The supervisor's lab_* samples: (name, component) -> value."""
        port = self.state()["ports"]["supervisor"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, sample.labels.get("component", ""))] = sample.value
        return samples

    def running(self) -> list[tuple[str, int]]:
        """(name, pid) of every live process this run started, found without state.json."""
        return [(name, proc.pid) for name, proc in find_run_processes(self.run_dir)]


class BackgroundLoad:
    """`clients` threads sending predictions through Traefik until stopped."""

    def __init__(self, url: str, clients: int = 20) -> None:
        self.url = url
        self.clients = clients
        self.statuses: Counter[int | str] = Counter()
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    outcome: int | str = client.post(
                        f"{self.url}/predict", json=PENGUIN
                    ).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with self._lock:
                    self.statuses[outcome] += 1
                    if outcome != 200:
                        self.failures.append((time.monotonic(), str(outcome)))

    def __enter__(self) -> BackgroundLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return self.total - self.statuses.get(200, 0)


@contextmanager
def running_lab(
    model_dir: Path, run_dir: Path, replicas: int, cpus: str, memory: str
) -> Iterator[NativeLab]:
    """A native stack started through the real CLI, always stopped when the block ends."""
    native = NativeLab(run_dir=run_dir, model_dir=model_dir)
    native.cli("up", REPLICAS=str(replicas), CPUS=cpus, MEMORY=memory)
    try:
        yield native
    finally:
        native.cli("down", check=False)
