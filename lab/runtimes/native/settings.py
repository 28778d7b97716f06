"""Settings of the native runtime, from environment variables (README, "Native runtime")."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from lab.core import REPO
from lab.runtimes.settings import StackSettings


class NativeSettings(StackSettings):
    """`LAB_` variables, plus the Makefile's REPLICAS, CPUS and MEMORY (StackSettings).
    LAB_HOST is where every component listens: anything but a loopback address needs
    LAB_ALLOW_REMOTE."""

    # Holds state.json, logs, generated configs; Prometheus data sits in prometheus-data/.
    run_dir: Path = REPO / ".run" / "native"
    # Opt-in for a non-loopback LAB_HOST: Traefik's API, Prometheus' lifecycle API and the
    # Pushgateway have no authentication, so listening beyond this machine is refused
    # unless this is true (and then `up` says what is exposed).
    allow_remote: bool = False
    web_port: int = Field(default=8000, ge=1, le=65535)
    traefik_port: int = Field(default=8080, ge=1, le=65535)
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    pushgateway_port: int = Field(default=9091, ge=1, le=65535)
    # The native dashboards (lab/dashboards/: the Grafana JSON drawn without Grafana), on
    # the port Grafana has in the Docker runtime.
    dashboard_port: int = Field(default=3000, ge=1, le=65535)
    # The supervisor's /metrics (restarts, crash loops); 0 picks a free port at `up`.
    supervisor_port: int = Field(default=0, ge=0, le=65535)
    # Replicas listen on the first free ports from here up.
    replica_base_port: int = Field(default=8101, ge=1024, le=65000)

    model_dir: Path = Field(
        default=REPO / "model", validation_alias=AliasChoices("API_MODEL_DIR", "LAB_MODEL_DIR")
    )
    # Short, so that experiments can measure windows of ~15 s with enough samples.
    scrape_interval_seconds: int = Field(default=2, ge=1, le=60)
    # `auto` limits replicas with cgroups where this process may create them; `off` never.
    cgroups: Literal["auto", "off"] = "auto"
    # A replica or component (Traefik, Prometheus, Pushgateway) that dies unexpectedly is
    # restarted with backoff (`on-failure`, see lab/runtimes/native/backoff.py) or only
    # marked dead (`no`).
    restart: Literal["on-failure", "no"] = "on-failure"
    # Seconds a replica may take to load its model and answer /ready (and a component its
    # readiness check); a restart that is not ready by then is stopped and counts as failed.
    ready_timeout_seconds: float = Field(default=60, gt=0)

    traefik_bin: str = "traefik"
    prometheus_bin: str = "prometheus"
    pushgateway_bin: str = "prometheus-pushgateway"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to any interface.
        return False


def remote_exposure(settings: NativeSettings) -> list[str]:
    """What listening on a non-loopback LAB_HOST hands to anyone who can reach the host
    (empty on loopback)."""
    if is_loopback(settings.host):
        return []
    s = settings
    return [
        f"the API through Traefik on :{s.web_port}",
        f"Traefik's dashboard and API on :{s.traefik_port}, without authentication "
        "(the whole routing configuration)",
        f"Prometheus on :{s.prometheus_port}: every metric, and its lifecycle API "
        "(anyone can POST /-/quit or /-/reload)",
        f"the Pushgateway on :{s.pushgateway_port}: anyone can push or delete series, "
        "that is fake or erase load-generator numbers",
        f"the dashboards on :{s.dashboard_port}: every metric (Prometheus' query API) and "
        "the sampled traces",
        f"every replica directly (from :{s.replica_base_port} up), /metrics included, "
        "and the supervisor's /metrics",
    ]
