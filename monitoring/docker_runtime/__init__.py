"""The Docker Compose runtime: the lab's stack as containers (docker-compose.yaml).

`DockerRuntime` implements monitoring.runtime.Runtime by running `docker compose` and
`docker` as programs; `python -m monitoring.docker_runtime` is what the Makefile calls.
"""

from monitoring.docker_runtime.runtime import DockerRuntime

__all__ = ["DockerRuntime"]
