"""What the Docker and Kubernetes runtimes' tests share around their fake programs.

Both runtimes drive an external program (`docker`, `kubectl`) replaced by a fake script
that keeps its state in `state.json` and records its calls in `calls.jsonl`; both read
Prometheus' targets through an object with `targets()` and wait on an injected clock.
The fake scripts themselves stay apart, since each imitates its own program
(fake_docker.py, fake_kubectl.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def install_program(source: Path, executable: Path) -> None:
    """Make the fake script `source` runnable as `executable`."""
    # -S: the fakes need only the standard library, and start faster without site.
    executable.write_text(f"#!{sys.executable} -S\n{source.read_text()}")
    executable.chmod(0o755)


@dataclass
class FakeProgram:
    """A fake program's folder (`root`: state.json, calls.jsonl) and its executable."""

    root: Path
    bin: Path

    def calls(self) -> list[dict[str, Any]]:
        """The calls the fake recorded, oldest first."""
        path = self.root / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / "state.json").read_text())


class FakePrometheus:
    """Targets as Prometheus lists them once it has scraped the replicas `scraped()`
    names as (replica, config label), after `unscraped_calls` answers with none."""

    def __init__(
        self, scraped: Callable[[], list[tuple[str, str]]], unscraped_calls: int = 0
    ) -> None:
        self.scraped = scraped
        self.unscraped_calls = unscraped_calls
        self.calls = 0

    def targets(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls <= self.unscraped_calls:
            return []
        return [
            {"labels": {"job": "api", "replica": replica, "config": config}, "health": "up"}
            for replica, config in self.scraped()
        ]


class Clock:
    """Time that advances one second each time it is read: timeouts end fast."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1
        return self.now
