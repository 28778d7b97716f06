"""Which runtime runs the stack: RUNTIME=auto|docker|native|k8s, decided once per command."""

from __future__ import annotations

import shutil
import subprocess

from lab.errors import LabError
from lab.runtimes.contract import Runtime

# k8s is never chosen by auto: it drives whatever cluster kubectl points at.
CHOICES = ("auto", "docker", "native", "k8s")


def docker_available() -> bool:
    """Whether `docker info` answers: a Docker engine this user may drive."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve(wanted: str) -> str:
    """`auto` made concrete: docker when `docker info` answers, else native."""
    if wanted not in CHOICES:
        raise LabError(f"RUNTIME={wanted!r} is not one of {', '.join(CHOICES)}")
    if wanted == "auto":
        return "docker" if docker_available() else "native"
    return wanted


def select_runtime(wanted: str, quiet: bool = False) -> Runtime:
    """The runtime RUNTIME names. Each is imported only when chosen: the native one needs
    no Docker, the Docker one no Prometheus binaries. `quiet` keeps the native stack's
    spinners off the terminal while an experiment's progress bar owns it."""
    chosen = resolve(wanted)
    if chosen == "k8s":
        from lab.runtimes.k8s.runtime import K8sRuntime

        return K8sRuntime()
    if chosen == "docker":
        from lab.runtimes.docker.runtime import DockerRuntime

        return DockerRuntime()
    from lab.runtimes.native.runtime import NativeRuntime

    return NativeRuntime(quiet=quiet)
