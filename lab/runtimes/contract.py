"""The one contract every runtime implements: what the command line and experiments use.

`Runtime` declares every ability the lab needs from a stack (start, change, observe and
stop it, run load against it, break one replica of it). The native runtime (processes on
127.0.0.1) and the Docker runtime (docker-compose.yaml) implement all of it; an ability a
runtime cannot offer raises `UnsupportedError` from that method, with a message saying what
to do instead. Callers never ask a runtime what it can do: they call the method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from lab.core import Deployment
from lab.errors import LabError


class UnsupportedError(LabError):
    """An ability this runtime cannot offer; the message says which runtime can."""


@dataclass(frozen=True)
class Endpoints:
    """Where the running stack is reached from this machine."""

    api: str
    prometheus: str
    pushgateway: str
    scrape_interval_seconds: float


@dataclass(frozen=True)
class LoadOptions:
    """One Locust session against the stack (`make load`, `make load-headless`)."""

    workers: int = 1
    users: int = 50
    spawn_rate: float = 10
    headless: bool = False
    run_time: str = "60s"
    # ramp | steps | spike | open (open uses arrival_rate), as locust/lab_shapes.py knows.
    shape: str = "ramp"
    arrival_rate: float = 0


@dataclass(frozen=True)
class GeneratorPlacement:
    """Where a load-generator process runs: a command prefix and variables that put it
    there (the native runtime: inside a cgroup with a CPU quota)."""

    command_prefix: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # The runtime's own record of the place, handed back to `release_load_generator`.
    record: Mapping[str, str] = field(default_factory=dict)

    def wrap(self, command: list[str]) -> list[str]:
        return [*self.command_prefix, *command]


class Runtime(ABC):
    """A way to run the lab's stack. Every method is an ability some caller uses."""

    #: `native` or `docker`: RUNTIME's value, and what reports record.
    name: ClassVar[str]
    #: How messages name the stack ("native stack", "Docker stack").
    title: ClassVar[str]

    # ------------------------------------------------------------ lifecycle
    @abstractmethod
    def ensure_available(self) -> None:
        """LabError unless what this runtime drives is there (the Docker engine and its
        compose plugin); the command line calls it once before every verb."""

    @abstractmethod
    def configured(self) -> Deployment:
        """The deployment the settings ask for (REPLICAS, CPUS, MEMORY): what `up` starts."""

    @abstractmethod
    def up(self, deployment: Deployment) -> None:
        """Start the stack with `deployment`; every replica ready and scraped on return."""

    @abstractmethod
    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        """Change the running stack; every replica ready and scraped on return. `replace`
        restarts every replica, one at a time, so they take up new API_* settings."""

    @abstractmethod
    def down(self) -> str:
        """Stop everything the stack started; returns what to tell the user."""

    # ---------------------------------------------------------- observation
    @abstractmethod
    def current(self) -> Deployment | None:
        """The running deployment, or None when the stack is not up."""

    @abstractmethod
    def require_running(self) -> Deployment:
        """The running deployment, or LabError saying the stack is down and what to do."""

    @abstractmethod
    def label(self) -> str:
        """The running deployment's `config` label, or `unknown` when nothing runs."""

    @abstractmethod
    def endpoints(self) -> Endpoints:
        """The addresses of the API (through Traefik), Prometheus and the Pushgateway."""

    @abstractmethod
    def replica_urls(self) -> list[str]:
        """Each serving replica's own URL, reachable from this machine (empty when the
        runtime does not publish replicas one by one)."""

    @abstractmethod
    def status(self) -> None:
        """Print every component and replica with its health, limits, CPU and memory;
        LabError when the stack is not running."""

    @abstractmethod
    def logs(self) -> int:
        """Follow every component's log until Ctrl-C; the exit code."""

    @abstractmethod
    def limits_description(self) -> str:
        """How replicas are limited here (cgroups, or why not), for reports."""

    # ---------------------------------------------------------------- usage
    @abstractmethod
    def demo(self) -> None:
        """Start the stack if needed, send a burst of predictions, show where to look."""

    @abstractmethod
    def load(self, options: LoadOptions) -> int:
        """Run Locust against the running stack in the foreground; its exit code (3 when a
        headless run misses its checks). LabError when the stack is not running."""

    @abstractmethod
    def place_load_generator(self, cpus: float) -> GeneratorPlacement:
        """A place for the experiments' Locust with a budget of `cpus` CPUs."""

    @abstractmethod
    def release_load_generator(self, placement: GeneratorPlacement) -> None:
        """Remove what `place_load_generator` created."""

    # ---------------------------------------------------------------- faults
    @abstractmethod
    def kill_replica(self) -> tuple[str, int]:
        """Kill one serving replica the way a crash would; its name and its restart
        count before the kill (for `recovered`)."""

    @abstractmethod
    def recovered(self, name: str, restarts_before: int) -> bool:
        """True once the replica `name` was restarted after the kill and serves again."""
