"""Settings of the Docker runtime, from environment variables (see docs/README-docker.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.resources import Deployment

REPO = Path(__file__).resolve().parents[2]
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


class DockerSettings(BaseSettings):
    """`LAB_` variables (shared names with the native runtime where the meaning is the
    same), plus the Makefile's REPLICAS, CPUS and MEMORY."""

    model_config = SettingsConfigDict(env_prefix="LAB_", extra="ignore", populate_by_name=True)

    compose_file: Path = REPO / "docker-compose.yaml"
    docker_bin: str = "docker"
    # The socket docker-compose.yaml mounts into its socket proxy. When the engine behind
    # it is the one the CLI talks to, its group id becomes DOCKER_GID, so the proxy runs
    # as nobody in that group instead of as root without capabilities.
    docker_socket: Path = Path("/var/run/docker.sock")
    # Where the published ports are reached from this machine.
    host: str = "127.0.0.1"

    replicas: int = Field(
        default=2, ge=1, le=64, validation_alias=AliasChoices("REPLICAS", "LAB_REPLICAS")
    )
    cpus: str = Field(default="1", validation_alias=AliasChoices("CPUS", "LAB_CPUS"))
    memory: str = Field(default="1g", validation_alias=AliasChoices("MEMORY", "LAB_MEMORY"))

    # How long a new replica may take to turn healthy, and the stack to be scraped.
    ready_timeout_seconds: float = Field(default=180, gt=0)
    poll_interval_seconds: float = Field(default=1.0, ge=0)

    def deployment(self) -> Deployment:
        return Deployment.parse(self.replicas, self.cpus, self.memory)

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"
