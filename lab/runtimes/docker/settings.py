"""Settings of the Docker runtime, from environment variables (README, "Run with Docker")."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lab.core import REPO
from lab.runtimes.settings import StackSettings

# docker-compose.yaml names the project; Prometheus' discovery filters on this name too.
PROJECT = "capacity-lab"
SERVICE = "api"
# The published ports of docker-compose.yaml.
WEB_PORT = 8000
PROMETHEUS_PORT = 9090
PUSHGATEWAY_PORT = 9091
GRAFANA_PORT = 3000
TRAEFIK_PORT = 8080
LOCUST_PORT = 8089
SCRAPE_INTERVAL_SECONDS = 5


class DockerSettings(StackSettings):
    """`LAB_` variables (shared names with the native runtime where the meaning is the
    same), plus the Makefile's REPLICAS, CPUS and MEMORY (StackSettings). LAB_HOST is
    where the published ports are reached from this machine."""

    compose_file: Path = REPO / "docker-compose.yaml"
    docker_bin: str = "docker"
    # The socket docker-compose.yaml mounts into its socket proxy. When the engine behind
    # it is the one the CLI talks to, its group id becomes DOCKER_GID, so the proxy runs
    # as nobody in that group instead of as root without capabilities.
    docker_socket: Path = Path("/var/run/docker.sock")

    # How long a new replica may take to turn healthy, and the stack to be scraped.
    ready_timeout_seconds: float = Field(default=180, gt=0)
    poll_interval_seconds: float = Field(default=1.0, ge=0)
