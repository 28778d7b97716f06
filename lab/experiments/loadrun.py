"""One headless Locust run of an experiment, as a subprocess we can watch and stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core import LOCUST, LOCUST_CONF, REPO
from lab.errors import LabError
from lab.runtimes.contract import Endpoints, GeneratorPlacement
from monitoring.prom import Prometheus


@dataclass
class LocustRun:
    run_id: str
    config: str
    process: subprocess.Popen[bytes]
    log: Path
    summary_path: Path
    launched: float
    started: float | None = None

    def summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}


class LocustLauncher:
    def __init__(
        self,
        endpoints: Endpoints,
        logs: Path,
        placement: GeneratorPlacement | None = None,
        workers: int = 1,
        push_interval_s: float = 1.0,
    ) -> None:
        self.endpoints = endpoints
        # More than one: Locust forks that many workers under a master (--processes).
        self.workers = workers
        self.push_interval_s = push_interval_s
        self.logs = logs
        self.prometheus = Prometheus(endpoints.prometheus)
        # When set, Locust runs there (the native runtime: a cgroup with its CPU budget).
        self.placement = placement

    def start(self, run_id: str, config: str, args: list[str], run_time_s: float) -> LocustRun:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{run_id}.log"
        summary = self.logs / f"{run_id}.summary.json"
        command = [
            LOCUST,
            "--config", str(LOCUST_CONF),
            "--headless",
            "--host", self.endpoints.api,
            "--pushgateway", self.endpoints.pushgateway,
            "--push-interval", f"{self.push_interval_s:g}",
            "--scrape-interval", str(self.endpoints.scrape_interval_seconds),
            "--run-id", run_id,
            "--config-label", config,
            "--summary-json", str(summary),
            "--run-time", f"{max(1, round(run_time_s))}s",
            # Requests in flight when the run ends are waited for, not abandoned: the
            # client then counts every request the replicas answered.
            "--stop-timeout", "60",
            "--only-summary",
            *(["--processes", str(self.workers)] if self.workers > 1 else []),
            *args,
        ]  # fmt: skip
        env = dict(os.environ)
        if self.placement is not None:
            env.update(self.placement.env)
            command = self.placement.wrap(command)
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, env=env
            )
        return LocustRun(run_id, config, process, log, summary, time.time())

    def wait_started(self, run: LocustRun, timeout: float = 30) -> float:
        """The run's own start time, as Locust pushed it (imports take a moment)."""
        query = f'max(locust_run_start_time_seconds{{run_id="{run.run_id}"}})'
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run.process.poll() is not None:
                raise LabError(f"Locust exited early; its log is {run.log}:\n{_tail(run.log)}")
            value = self.prometheus.value(query)
            if value:
                run.started = value
                return value
            time.sleep(0.5)
        raise LabError(
            f"Locust run {run.run_id} never showed up in Prometheus after {timeout:.0f} s; is "
            f"the Pushgateway at {self.endpoints.pushgateway} scraped? Log: {run.log}"
        )

    def finish(self, run: LocustRun, timeout: float) -> int:
        try:
            return run.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(run)
            return run.process.wait(30)

    def stop(self, run: LocustRun) -> None:
        """Ask Locust to stop: it pushes its final state and clears the Pushgateway."""
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGTERM)
            try:
                run.process.wait(30)
            except subprocess.TimeoutExpired:
                run.process.kill()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
