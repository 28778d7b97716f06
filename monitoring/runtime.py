"""The runtime interface the experiment runner drives: native processes or Docker Compose.

Both runtimes expose the same ports and the same Prometheus vocabulary; what differs is
how a deployment is started and changed. `select_runtime` follows the Makefile's
RUNTIME=auto|docker|native.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Protocol

from api.resources import Deployment
from monitoring.errors import LabError
from monitoring.native import cgroups


@dataclass(frozen=True)
class Endpoints:
    api: str
    prometheus: str
    pushgateway: str
    scrape_interval_seconds: float


class Runtime(Protocol):
    name: str

    def endpoints(self) -> Endpoints: ...

    def current(self) -> Deployment | None:
        """The running deployment, or None when the stack is not up."""

    def up(self, deployment: Deployment) -> None:
        """Start the stack with `deployment`; every replica ready and scraped on return."""

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        """Change the running stack; every replica ready and scraped on return. `replace`
        restarts every replica, one at a time, so they take up new API_* settings."""


class NativeRuntime:
    name = "native"

    def __init__(self) -> None:
        from rich.console import Console

        from monitoring.native.settings import NativeSettings
        from monitoring.native.stack import NativeStack

        self.settings = NativeSettings()
        self.stack = NativeStack(self.settings, Console(stderr=True, quiet=True))

    def endpoints(self) -> Endpoints:
        """The running stack's addresses (as recorded when it started), else the settings'."""
        s = self.settings
        state = self.stack.state()
        ports = state.ports if state else {}
        return Endpoints(
            api=s.url(ports.get("web", s.web_port)),
            prometheus=s.url(ports.get("prometheus", s.prometheus_port)),
            pushgateway=s.url(ports.get("pushgateway", s.pushgateway_port)),
            scrape_interval_seconds=(
                state.scrape_interval_seconds if state else s.scrape_interval_seconds
            ),
        )

    def current(self) -> Deployment | None:
        state = self.stack.state()
        if state is None or not any(proc.alive() for _, proc in state.all_procs()):
            return None
        return Deployment(state.replicas_wanted, state.cpus, state.memory)

    def up(self, deployment: Deployment) -> None:
        self.settings = self.settings.model_copy(
            update={
                "replicas": deployment.replicas,
                "cpus": _text(deployment.cpus),
                "memory": _bytes(deployment.memory),
            }
        )
        self.stack.settings = self.settings
        self.stack.up()

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        self.stack.scale(deployment, replace=replace)

    def generator_cgroup(self, cpus: float) -> dict[str, str]:
        """A cgroup beside the replicas' with a CPU quota, for the load generator."""
        state = self.stack.state()
        if state is None or state.cgroup_mode == "off":
            note = state.cgroup_note if state else "the stack is not running"
            raise LabError(f"load_generator.cpus needs cgroups, which are off here ({note})")
        plan = cgroups.CgroupPlan(state.cgroup_mode, state.cgroup_note, state.cgroup_roots)
        return cgroups.create(plan, "load-generator", cpus, None)

    def release_cgroup(self, cgroup: dict[str, str]) -> None:
        cgroups.remove(cgroup)

    def replica_urls(self) -> list[str]:
        state = self.stack.state()
        return [self.settings.url(r.port) for r in state.serving()] if state else []

    def kill_replica(self) -> tuple[str, int]:
        """SIGKILL the newest serving replica (a crash) and return its name and restart
        count; the supervisor restarts it."""
        state = self.stack.state()
        if state is None or not state.serving():
            raise LabError("no replica to kill: the native stack is not running")
        victim = state.serving()[-1]
        handle = victim.proc.handle()
        if handle is None:
            raise LabError(f"{victim.name} is not running")
        handle.kill()
        return victim.name, victim.restarts

    def recovered(self, name: str, restarts_before: int) -> bool:
        """True once `name` was restarted (again) and answers /ready."""
        state = self.stack.state()
        if state is None:
            return False
        replica = next((r for r in state.replicas if r.name == name), None)
        return bool(
            replica
            and replica.restarts > restarts_before
            and replica.status == "running"
            and replica.proc.alive()
        )


def _text(cpus: float | None) -> str:
    return "" if cpus is None else str(cpus)


def _bytes(memory: int | None) -> str:
    return "" if memory is None else str(memory)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def select_runtime(wanted: str) -> Runtime:
    if wanted == "auto":
        wanted = "docker" if docker_available() else "native"
    if wanted == "native":
        return NativeRuntime()
    if wanted == "docker":
        from monitoring.docker_runtime import DockerRuntime

        return DockerRuntime()
    raise LabError(f"RUNTIME={wanted!r} is not one of auto, docker, native")
