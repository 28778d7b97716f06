"""A runtime that records what the command line asked of it (tests/lab/test_cli.py)."""

from __future__ import annotations

from typing import Any

from lab.core import Deployment
from lab.errors import LabError
from lab.runtimes.contract import Endpoints, GeneratorPlacement, LoadOptions, Runtime


class FakeRuntime(Runtime):
    name = "fake"
    title = "fake stack"

    def __init__(self, running: Deployment | None = None, load_exit: int = 0) -> None:
        self.running = running
        self.load_exit = load_exit
        self.calls: list[tuple[str, Any]] = []
        # The RUNTIME values the command line selected this runtime with.
        self.chosen: list[str] = []

    def _record(self, verb: str, argument: Any = None) -> None:
        self.calls.append((verb, argument))

    def verbs(self) -> list[str]:
        return [verb for verb, _ in self.calls]

    def ensure_available(self) -> None:
        self._record("ensure_available")

    def configured(self) -> Deployment:
        return Deployment.parse(3, "0.5", "512m")

    def up(self, deployment: Deployment) -> None:
        self._record("up", deployment)
        self.running = deployment

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        self._record("scale", deployment)
        self.running = deployment

    def down(self) -> str:
        self._record("down")
        self.running = None
        return "fake stack stopped"

    def current(self) -> Deployment | None:
        return self.running

    def require_running(self) -> Deployment:
        if self.running is None:
            raise LabError("the fake stack is not running; start it with `make up`")
        return self.running

    def label(self) -> str:
        return self.running.label if self.running else "unknown"

    def endpoints(self) -> Endpoints:
        return Endpoints("http://api", "http://prometheus", "http://pushgateway", 1.0)

    def replica_urls(self) -> list[str]:
        return []

    def status(self) -> None:
        self._record("status")
        self.require_running()

    def logs(self) -> int:
        self._record("logs")
        return 0

    def limits_description(self) -> str:
        return "none (fake)"

    def demo(self) -> None:
        self._record("demo")

    def load(self, options: LoadOptions) -> int:
        self._record("load", options)
        self.require_running()
        return self.load_exit

    def place_load_generator(self, cpus: float) -> GeneratorPlacement:
        return GeneratorPlacement()

    def release_load_generator(self, placement: GeneratorPlacement) -> None:
        """Nothing was placed."""

    def kill_replica(self) -> tuple[str, int]:
        return "replica-1", 0

    def recovered(self, name: str, restarts_before: int) -> bool:
        return True
