"""A real Pushgateway on a free port, one API replica, and Locust runs pointed at both."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from tests.load.locust_runner import LOCUST
from tests.support import PYTHON, REPO, api_env, free_port, stop_process, wait_until

PUSHGATEWAY_BIN = "prometheus-pushgateway"


class Pushgateway:
    """A Pushgateway that keeps its groups in memory only, so a restart starts empty."""

    def __init__(self, log: Path) -> None:
        binary = shutil.which(PUSHGATEWAY_BIN)
        if binary is None:
            raise RuntimeError(f"{PUSHGATEWAY_BIN} is not installed: run `make install`")
        self.binary = binary
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    # Debian's default keeps groups in a system file across restarts.
                    "--persistence.file=",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200,
            timeout=20,
            what="the Pushgateway to become ready",
        )

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or said goodbye to."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def groups(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.url}/api/v1/metrics", timeout=2).json()["data"]

    def run_ids(self) -> set[str]:
        return {group["labels"].get("run_id", "") for group in self.groups()}


def metric_sum(group: dict[str, Any], family: str) -> float:
    """The sum of one family's samples in a group as the Pushgateway's API lists it."""
    return sum(float(m["value"]) for m in (group.get(family) or {}).get("metrics", []))


def push_time(group: dict[str, Any]) -> float:
    return metric_sum(group, "push_time_seconds")


@dataclass
class Snapshot:
    """What one group of the Pushgateway held at one push (as seen by polling)."""

    pushed_at: float
    requests: float
    push_failures: float


@dataclass
class RunGroupPoller(ABC):
    """Polls the Pushgateway every 0.1 s in a thread and hands each of one run's groups to
    `seen`; a Pushgateway that is down or restarting (some tests do that to it) gives none."""

    gateway: Pushgateway
    run_id: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                groups = self.gateway.groups()
            except (httpx.HTTPError, ValueError):
                groups = []
            for group in groups:
                if group["labels"].get("run_id") == self.run_id:
                    self.seen(group)
            self._stop.wait(0.1)

    @abstractmethod
    def seen(self, group: dict[str, Any]) -> None:
        """One of the run's groups, as the Pushgateway holds it now."""


@dataclass
class GroupWatcher(RunGroupPoller):
    """Keeps each distinct push of one run's group."""

    pushes: list[Snapshot] = field(default_factory=list)

    def seen(self, group: dict[str, Any]) -> None:
        snapshot = Snapshot(
            pushed_at=push_time(group),
            requests=metric_sum(group, "locust_requests_total"),
            push_failures=metric_sum(group, "locust_push_failures_total"),
        )
        if not self.pushes or self.pushes[-1].pushed_at != snapshot.pushed_at:
            self.pushes.append(snapshot)


@dataclass
class LastPushes(RunGroupPoller):
    """Keeps the last push of each of one run's groups, by instance: what Prometheus
    scraped last from each Locust process before its group went."""

    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def seen(self, group: dict[str, Any]) -> None:
        self.groups[group["labels"]["instance"]] = group

    def pushing(self, family: str) -> dict[str, float]:
        """The instances whose last push holds `family`, with the sum of its samples."""
        return {
            instance: metric_sum(group, family)
            for instance, group in self.groups.items()
            if (group.get(family) or {}).get("metrics")
        }


class Replica:
    """One API replica, the target of the Locust runs (no stack around it)."""

    def __init__(self, model_dir: Path, log: Path) -> None:
        self.port = free_port()
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "api"],
                cwd=REPO,
                env=api_env(model_dir, self.port),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: httpx.get(f"{self.url}/ready", timeout=1).status_code == 200,
                timeout=60,
                what="the replica to become ready",
            )
        except TimeoutError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.process)


def locust_command(host: str, gateway: str, run_id: str, run_time: str, *args: str) -> list[str]:
    """A small headless run: few users, pushes every second, a short linger at the end."""
    return [
        LOCUST,
        "--config", "locust/locust.conf",
        "--headless",
        "--host", host,
        "--pushgateway", gateway,
        "--push-interval", "1",
        "--scrape-interval", "2",
        "--config-label", "r1-test",
        "--run-id", run_id,
        "-u", "4", "-r", "4",
        "--think-time", "0.2",
        "-t", run_time,
        *args,
    ]  # fmt: skip


def start_locust(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def read_summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def wait_for_group(gateway: Pushgateway, run_id: str, timeout: float = 60) -> None:
    wait_until(
        lambda: run_id in gateway.run_ids(), timeout=timeout, what=f"run {run_id}'s first push"
    )
