"""What the Kubernetes manifests take from the rest of the repository, read in one place.

Each value here has exactly one home elsewhere: the recording and alert rules
(prometheus/rules/), the dashboards (grafana/dashboards/), Traefik's retry and transport
(traefik/dynamic/shared.yml), the router rule and health check (the api service's
Traefik labels in docker-compose.yaml, which tests/docker/test_traefik_labels.py keeps
equal to the native runtime's), the images (docker-compose.yaml), the replica's drain
(api/settings.py) and the deployments the workshop measures (experiments/default.yml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from api.settings import ApiSettings
from lab.core import REPO, Deployment

RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
TRAEFIK_SHARED = REPO / "traefik" / "dynamic" / "shared.yml"
COMPOSE = REPO / "docker-compose.yaml"
PROMETHEUS_DOCKER = REPO / "prometheus" / "prometheus.docker.yml"
MATRIX = REPO / "experiments" / "default.yml"
HEALTH_LABEL = "traefik.http.services.api.loadbalancer.healthcheck."
# docker-compose.yaml names the prediction router after the config (predict-<config>).
ROUTER_RULE = re.compile(r"^traefik\.http\.routers\.(?P<name>.+)\.rule$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")


def seconds(duration: str) -> float:
    """A Traefik duration (`250ms`, `5s`, `1m`) in seconds."""
    match = _DURATION.match(duration.strip())
    if not match:
        raise ValueError(f"{duration!r} is not a duration like 250ms, 5s or 1m")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1, "m": 60}[unit]


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_image(service: str) -> str:
    """The image docker-compose.yaml pins for `service` (the manifests run the same)."""
    return str(compose()["services"][service]["image"])


@dataclass(frozen=True)
class HealthCheck:
    """How the load balancer tells a serving replica from one that must not get work."""

    path: str
    interval_seconds: float
    timeout_seconds: float


def api_labels() -> dict[str, str]:
    """The api service's labels, whether compose lists them as a map or `key=value`."""
    labels = compose()["services"]["api"]["labels"]
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    return dict(str(item).split("=", 1) for item in labels)


def health_check() -> HealthCheck:
    labels = api_labels()
    return HealthCheck(
        path=labels[f"{HEALTH_LABEL}path"],
        interval_seconds=seconds(labels[f"{HEALTH_LABEL}interval"]),
        timeout_seconds=seconds(labels[f"{HEALTH_LABEL}timeout"]),
    )


def router_rules() -> dict[str, str]:
    """Traefik's routers to the replicas and their rules: `predict` (the predictions,
    whose router compose names after the config) and `api` (every other API path)."""
    rules = {}
    for key, value in api_labels().items():
        match = ROUTER_RULE.match(key)
        if match:
            name = "predict" if match["name"].startswith("predict-") else match["name"]
            rules[name] = value
    if set(rules) != {"predict", "api"}:
        raise ValueError(
            f"{COMPOSE}: expected the routers predict-<config> and api, found {sorted(rules)}"
        )
    return rules


def traefik_shared() -> dict[str, Any]:
    """traefik/dynamic/shared.yml: the retry middleware and the transport to replicas."""
    return yaml.safe_load(TRAEFIK_SHARED.read_text())["http"]


def le_relabeling() -> list[dict[str, Any]]:
    """The `le` normalisation every non-Python target gets (prometheus.docker.yml)."""
    jobs = yaml.safe_load(PROMETHEUS_DOCKER.read_text())["scrape_configs"]
    traefik = next(job for job in jobs if job["job_name"] == "traefik")
    return list(traefik["metric_relabel_configs"])


@dataclass(frozen=True)
class Drain:
    """A replica's stop, from api/settings.py: after SIGTERM it answers /ready 503 but
    serves for `drain_seconds`, then gives requests in flight `shutdown_seconds`."""

    drain_seconds: float
    shutdown_seconds: float


def drain() -> Drain:
    fields = ApiSettings.model_fields
    return Drain(
        drain_seconds=float(fields["drain_seconds"].default),
        shutdown_seconds=float(fields["shutdown_timeout_seconds"].default),
    )


def api_defaults() -> dict[str, str]:
    """The serving settings docker-compose.yaml gives every replica, by variable name,
    with compose's `${VAR:-default}` resolved to the default."""
    environment = compose()["services"]["api"]["environment"]
    out = {}
    for name in ("API_ENGINE", "API_BATCHING", "API_MAX_BODY_BYTES"):
        value = str(environment[name])
        match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
        out[name] = match.group(1) if match else value
    return out


def matrix() -> list[Deployment]:
    """The deployments of the workshop's experiment plan, in its order."""
    plan = yaml.safe_load(MATRIX.read_text())
    return [
        Deployment.parse(c["replicas"], str(c.get("cpus", "")), str(c.get("memory", "")))
        for c in plan["configs"]
    ]


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))
