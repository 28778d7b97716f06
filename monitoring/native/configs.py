"""Configuration files the native runtime generates into its run folder.

Traefik's static settings and middlewares are the repository's own files (shared with
the Docker runtime); only the entry point addresses and the provider are replaced here.
The replica list is written for Traefik (file provider) and Prometheus (file_sd), each
file replaced atomically so neither reads half a file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from string import Template
from typing import Any

import yaml

from monitoring.native.settings import REPO, NativeSettings
from monitoring.native.state import Replica

TRAEFIK_DIR = REPO / "traefik"
PROMETHEUS_DIR = REPO / "prometheus"

# Only the API is routed through :8000; the replicas' /metrics never is.
API_ROUTE_RULE = (
    "Path(`/`) || Path(`/predict`) || Path(`/predict/batch`) || Path(`/health`) || "
    "Path(`/ready`) || Path(`/metadata`) || Path(`/docs`) || Path(`/openapi.json`)"
)
HEALTH_CHECK = {"path": "/ready", "interval": "1s", "timeout": "1s"}
# A replica whose connections fail is taken out at once for a second, without waiting for
# the next active check: a retried request then goes to a replica that can answer it.
PASSIVE_HEALTH_CHECK = {"failureWindow": "1s", "maxFailedAttempts": 1}
SERVICE = "api"


def _atomic_write(path: Path, text: str, staging: Path) -> None:
    """Write in `staging` (outside watched folders), then rename into place."""
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f".{path.name}.tmp"
    tmp.write_text(text)
    tmp.replace(path)


class RunFiles:
    """Paths inside the run folder."""

    def __init__(self, settings: NativeSettings) -> None:
        self.settings = settings
        root = settings.run_dir
        self.root = root
        self.logs = root / "logs"
        self.staging = root / "staging"
        self.traefik_static = root / "traefik" / "traefik.yml"
        self.traefik_dynamic_dir = root / "traefik" / "dynamic"
        self.traefik_replicas = self.traefik_dynamic_dir / "replicas.yml"
        self.prometheus_config = root / "prometheus" / "prometheus.yml"
        self.targets_dir = root / "prometheus" / "targets"
        self.api_targets = self.targets_dir / "api.json"
        self.supervisor_targets = self.targets_dir / "supervisor.json"
        self.prometheus_data = root / "prometheus-data"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def write_static(self, replicas: list[Replica], label: str) -> None:
        """Everything but the replica list's later changes: called once by `up`."""
        for folder in (self.logs, self.traefik_dynamic_dir, self.targets_dir, self.prometheus_data):
            folder.mkdir(parents=True, exist_ok=True)
        self.traefik_static.write_text(
            yaml.safe_dump(traefik_static(self.settings, self.traefik_dynamic_dir))
        )
        shutil.copyfile(
            TRAEFIK_DIR / "dynamic" / "shared.yml", self.traefik_dynamic_dir / "shared.yml"
        )
        self.prometheus_config.write_text(prometheus_config(self.settings, self.targets_dir))
        self.publish(replicas, label)

    def publish(self, replicas: list[Replica], label: str) -> None:
        """Tell Traefik and Prometheus which replicas serve now."""
        _atomic_write(
            self.traefik_replicas,
            yaml.safe_dump(traefik_dynamic(self.settings, replicas)),
            self.staging,
        )
        _atomic_write(
            self.api_targets,
            json.dumps(file_sd(self.settings, replicas, label), indent=2),
            self.staging,
        )

    def publish_supervisor(self, port: int) -> None:
        """Tell Prometheus where the supervisor serves its metrics."""
        targets = [{"targets": [f"{self.settings.host}:{port}"], "labels": {}}]
        _atomic_write(self.supervisor_targets, json.dumps(targets, indent=2), self.staging)


def traefik_static(settings: NativeSettings, dynamic_dir: Path) -> dict[str, Any]:
    static = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())
    static["entryPoints"]["web"]["address"] = f"{settings.host}:{settings.web_port}"
    static["entryPoints"]["traefik"]["address"] = f"{settings.host}:{settings.traefik_port}"
    static["providers"] = {"file": {"directory": str(dynamic_dir), "watch": True}}
    return static


def traefik_dynamic(settings: NativeSettings, replicas: list[Replica]) -> dict[str, Any]:
    servers = [{"url": settings.url(r.port)} for r in replicas]
    return {
        "http": {
            "routers": {
                SERVICE: {
                    "entryPoints": ["web"],
                    "rule": API_ROUTE_RULE,
                    "service": SERVICE,
                    "middlewares": ["api-retry@file"],
                }
            },
            "services": {
                SERVICE: {
                    "loadBalancer": {
                        "servers": servers,
                        "healthCheck": dict(HEALTH_CHECK),
                        "passiveHealthCheck": dict(PASSIVE_HEALTH_CHECK),
                        "serversTransport": "api-transport@file",
                        "passHostHeader": True,
                    }
                }
            },
        }
    }


def file_sd(settings: NativeSettings, replicas: list[Replica], label: str) -> list[dict[str, Any]]:
    return [
        {"targets": [f"{settings.host}:{r.port}"], "labels": {"replica": r.name, "config": label}}
        for r in replicas
    ]


def prometheus_config(settings: NativeSettings, targets_dir: Path) -> str:
    template = Template((PROMETHEUS_DIR / "prometheus.native.yml").read_text())
    return template.substitute(
        SCRAPE_INTERVAL=f"{settings.scrape_interval_seconds}s",
        RULES_DIR=str(PROMETHEUS_DIR / "rules"),
        TARGETS_DIR=str(targets_dir),
        TRAEFIK_ADDRESS=f"{settings.host}:{settings.traefik_port}",
        PUSHGATEWAY_ADDRESS=f"{settings.host}:{settings.pushgateway_port}",
        PROMETHEUS_ADDRESS=f"{settings.host}:{settings.prometheus_port}",
    )
