"""Configuration files the native runtime generates into its run folder.

Traefik's static settings and middlewares are the repository's own files (shared with
the Docker runtime); only the entry point addresses and the provider are replaced here.
The replica list is written for Traefik (file provider) and Prometheus (file_sd), each
file replaced atomically so neither reads half a file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template
from typing import Any

import yaml

from api.settings import ApiSettings
from lab.core import REPO
from lab.errors import LabError
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.state import Replica

TRAEFIK_DIR = REPO / "traefik"
PROMETHEUS_DIR = REPO / "prometheus"
# Prometheus' flags both runtimes run with (docker-compose.yaml passes the same ones;
# tests/docker/test_prometheus_config.py compares them): 30 days of history, the
# lifecycle API (POST /-/reload re-reads the configuration), and exemplar storage,
# without which Prometheus drops the trace ids the latency buckets carry. Paths,
# addresses and the log level are each runtime's own.
PROMETHEUS_FLAGS = (
    "--storage.tsdb.retention.time=30d",
    "--web.enable-lifecycle",
    "--enable-feature=exemplar-storage",
)

# Only the API is routed through :8000; the replicas' /metrics never is. Predictions
# have a router of their own, named after the config (`predict_router`): its metrics are
# the edge layer of prometheus/rules/layers.yml, which thereby never counts /ready or
# /health and knows which config served each request, even with two configs up during
# a rolling change. Every other API path goes through the router `api`. The two rules
# are disjoint, so no router priority decides between them.
PREDICT_ROUTE_RULE = "Path(`/predict`) || Path(`/predict/batch`)"
API_ROUTE_RULE = (
    "Path(`/`) || Path(`/health`) || Path(`/ready`) || Path(`/metadata`) || "
    "Path(`/docs`) || Path(`/openapi.json`)"
)
PREDICT_ROUTER_PREFIX = "predict-"
# Checked four times a second: a replica that is draining, broken or killed leaves
# within a quarter of a second (/ready costs microseconds, see api/overload.py). The
# timeout is far longer, so a replica that is busy but alive is never ejected for being
# slow: /ready is answered ahead of all other work and the excess is shed, yet it still
# waits for the event loop. Measured with one replica at 0.25 CPU and 2,500 clients,
# /ready took up to 0.5 s at ~2.5x its capacity and up to 1.6 s when the clients resent
# without pause; with the old 1 s timeout Traefik took the only replica out and answered
# 503 to everyone. There is no passive health check: Traefik 3.7 counts every 5xx answer
# as a failed attempt (measured), so one shed 503 or one failed model call took a
# replica out of rotation. A killed replica is covered by the retry middleware
# (traefik/dynamic/shared.yml) and by this check: with 2 replicas under 20 clients, a
# kill -9 cost 7-13 requests (at most the ones in flight), against 48-113 with a check
# every second or a single retry.
HEALTH_CHECK = {"path": "/ready", "interval": "250ms", "timeout": "5s"}
SERVICE = "api"
RETRY_MIDDLEWARE = "api-retry"
# The retry middleware's body cap in traefik/dynamic/shared.yml (its only such key).
_BODY_CAP = re.compile(r"^([ \t]+maxRequestBodyBytes:[ \t]*)\d+[ \t]*$", re.MULTILINE)


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
        # Sampled spans, one JSON-lines file per replica; the dashboards' trace view reads them.
        self.traces = root / "traces"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def write_static(self, replicas: list[Replica], label: str) -> None:
        """Everything but the replica list's later changes: called once by `up`."""
        for folder in (self.logs, self.traefik_dynamic_dir, self.targets_dir, self.prometheus_data):
            folder.mkdir(parents=True, exist_ok=True)
        self.traefik_static.write_text(
            yaml.safe_dump(traefik_static(self.settings, self.traefik_dynamic_dir))
        )
        self.write_shared(replicas)
        self.prometheus_config.write_text(prometheus_config(self.settings, self.targets_dir))
        self.publish(replicas, label)

    def write_shared(self, replicas: list[Replica]) -> None:
        """The repository's shared Traefik file, with the replicas' body cap filled in."""
        text = traefik_shared(body_cap(replicas))
        path = self.traefik_dynamic_dir / "shared.yml"
        if not path.exists() or path.read_text() != text:
            _atomic_write(path, text, self.staging)

    def publish(self, replicas: list[Replica], label: str) -> None:
        """Tell Traefik and Prometheus which replicas serve now."""
        self.write_shared(replicas)
        _atomic_write(
            self.traefik_replicas,
            yaml.safe_dump(traefik_dynamic(self.settings, replicas, label)),
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
    # Its spans go to the Docker runtime's collector; natively nothing receives OTLP.
    static.pop("tracing", None)
    return static


def body_cap(replicas: list[Replica]) -> int:
    """The largest request body a serving replica accepts (its API_MAX_BODY_BYTES).

    Traefik's retry middleware keeps a body up to this size so that a retry can send it
    again: it must cover every body some replica would answer. Without replicas, the
    value this environment would start them with.
    """
    default = ApiSettings().max_body_bytes
    caps = []
    for replica in replicas:
        value = (replica.settings_env or {}).get("API_MAX_BODY_BYTES")
        # A replica refuses to start on a value that is not an integer; it serves none.
        caps.append(int(value) if value and value.strip().isdigit() else default)
    return max(caps, default=default)


def traefik_shared(max_body_bytes: int) -> str:
    """traefik/dynamic/shared.yml with the retry's body cap set to `max_body_bytes`.

    The text is kept, comments included, and only that one value replaced. The Docker
    runtime mounts the file as it is: there the value is API_MAX_BODY_BYTES' default.
    """
    text = (TRAEFIK_DIR / "dynamic" / "shared.yml").read_text()
    text, count = _BODY_CAP.subn(rf"\g<1>{max_body_bytes}", text)
    if count != 1:
        raise LabError(
            f"{TRAEFIK_DIR / 'dynamic' / 'shared.yml'}: expected one {_BODY_CAP.pattern}"
        )
    return text


def predict_router(label: str) -> str:
    """The name of a config's prediction router: `predict-r2-c1_0-m1g` for r2-c1.0-m1g.

    Traefik reads a Docker label's name between dots, so a name cannot hold one; a config
    label has at most one (in its CPUs), written `_`, which the rules turn back into a
    dot (prometheus/rules/layers.yml). docker-compose.yaml names its router from the
    variable CONFIG_ROUTER, which the Docker runtime sets to this.
    """
    return PREDICT_ROUTER_PREFIX + label.replace(".", "_")


def traefik_dynamic(
    settings: NativeSettings, replicas: list[Replica], label: str
) -> dict[str, Any]:
    servers = [{"url": settings.url(r.port)} for r in replicas]

    def router(rule: str) -> dict[str, Any]:
        return {
            "entryPoints": ["web"],
            "rule": rule,
            "service": SERVICE,
            "middlewares": [f"{RETRY_MIDDLEWARE}@file"],
        }

    return {
        "http": {
            "routers": {
                predict_router(label): router(PREDICT_ROUTE_RULE),
                SERVICE: router(API_ROUTE_RULE),
            },
            "services": {
                SERVICE: {
                    "loadBalancer": {
                        "servers": servers,
                        "healthCheck": dict(HEALTH_CHECK),
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
