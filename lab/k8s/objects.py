"""The Kubernetes objects generated from the shared sources (lab/k8s/sources.py).

`api_deployment` is the API's Deployment for one lab deployment; `deployment_patch` is
what changes between two of them (replicas, limits, the `config` label), written as a
strategic-merge patch for the overlays and applied by `apply_deployment` in the `k8s`
runtime, so an overlay and `make scale RUNTIME=k8s` produce the same object.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

from lab.core import Deployment, format_cpus, format_memory
from lab.k8s import sources
from lab.runtimes.settings import StackSettings

NAMESPACE = "capacity-lab"
PART_OF = {"app.kubernetes.io/part-of": "capacity-lab"}
API = "api"
CONFIG_LABEL = "lab.config"
API_PORT = 8001
# Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps carrying this.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
# Once SIGTERM arrives the pod is already leaving the Service's endpoints, but Traefik
# learns it from the EndpointSlice watch a moment later: the replica keeps serving
# through this sleep before it even starts its own drain. Kubernetes' readiness probe
# runs at most once a second, so the floor is one probe period.
PRE_STOP_FLOOR_SECONDS = 1
# Margin over the whole stop for the interpreter's exit, as docker-compose.yaml keeps
# (a 20 s stop grace period for 13 s of drain and in-flight grace).
EXIT_MARGIN_SECONDS = 4
MIB = 1024**2
GIB = 1024**3


def default_deployment() -> Deployment:
    """The deployment `make up` starts when nothing is set (StackSettings' defaults)."""
    fields = StackSettings.model_fields
    return Deployment.parse(
        fields["replicas"].default, fields["cpus"].default, fields["memory"].default
    )


def cpu_quantity(cpus: float) -> str:
    """CPUs in Kubernetes' syntax: millicores, the CFS quota Docker's --cpus sets too."""
    return f"{round(cpus * 1000)}m"


def memory_quantity(memory: int) -> str:
    """Bytes in Kubernetes' binary units, exact (1g in Docker's syntax is 1Gi)."""
    for unit, size in (("Gi", GIB), ("Mi", MIB), ("Ki", 1024)):
        if memory % size == 0:
            return f"{memory // size}{unit}"
    return str(memory)


def resources(deployment: Deployment) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS): the replica gets what its label says,
    no more when the node is idle, no less when it is busy."""
    if deployment.cpus is None or deployment.memory is None:
        raise ValueError(
            f"{deployment.label}: Kubernetes replicas need CPU and memory limits "
            "(set CPUS and MEMORY)"
        )
    quantities = {
        "cpu": cpu_quantity(deployment.cpus),
        "memory": memory_quantity(deployment.memory),
    }
    return {"requests": dict(quantities), "limits": dict(quantities)}


def identity_env(deployment: Deployment) -> list[dict[str, str]]:
    """The variables that tell a replica which deployment it belongs to."""
    assert deployment.cpus is not None and deployment.memory is not None
    return [
        {"name": "API_CONFIG", "value": deployment.label},
        {"name": "API_CPU_LIMIT", "value": format_cpus(deployment.cpus)},
        {"name": "API_MEMORY_LIMIT", "value": format_memory(deployment.memory)},
    ]


def stop_timing() -> dict[str, int]:
    """preStop sleep and termination grace from the replica's own drain."""
    drain = sources.drain()
    check = sources.health_check()
    pre_stop = max(PRE_STOP_FLOOR_SECONDS, math.ceil(drain.drain_seconds))
    stop = pre_stop + drain.drain_seconds + drain.shutdown_seconds
    grace = math.ceil(stop) + EXIT_MARGIN_SECONDS
    return {
        "pre_stop": pre_stop,
        "grace": grace,
        "period": max(1, math.ceil(check.interval_seconds)),
        "timeout": max(1, math.ceil(check.timeout_seconds)),
    }


def api_deployment(deployment: Deployment) -> dict[str, Any]:
    """The API's Deployment: one uvicorn process per pod, as in the other runtimes."""
    timing = stop_timing()
    check = sources.health_check()
    labels = {"app.kubernetes.io/name": API, **PART_OF}
    env = [
        *identity_env(deployment),
        # The replica's name is its pod's: Prometheus labels its target `replica` so too.
        {"name": "API_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        *({"name": k, "value": v} for k, v in sources.api_defaults().items()),
        # The model card's digest the replica must find in the image, or refuse to start
        # (api/artefact.py); empty in base/model-pin.yaml: any intact model serves.
        {
            "name": "API_MODEL_SHA256",
            "valueFrom": {"configMapKeyRef": {"name": "api-model", "key": "API_MODEL_SHA256"}},
        },
        {"name": "API_HOST", "value": "0.0.0.0"},
        {"name": "API_PORT", "value": str(API_PORT)},
        {"name": "OTEL_SERVICE_NAME", "value": "penguin-api"},
    ]
    container = {
        "name": API,
        "image": sources.compose_image(API),
        "ports": [{"name": "http", "containerPort": API_PORT}],
        "env": env,
        "resources": resources(deployment),
        # Ready: the load balancer may send work (503 while draining or overloaded).
        # Kubernetes takes a pod out of the Service after one failed probe, as Traefik's
        # own health check does in the other runtimes, with the same path and timeout.
        "readinessProbe": {
            "httpGet": {"path": check.path, "port": "http"},
            "periodSeconds": timing["period"],
            "timeoutSeconds": timing["timeout"],
            "failureThreshold": 1,
            "successThreshold": 1,
        },
        # Alive: the process answers at all. Slow under load is not dead, so three misses.
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": timing["timeout"],
            "failureThreshold": 3,
        },
        # The model is verified and loaded before the first answer: up to 60 s.
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 1,
            "timeoutSeconds": timing["timeout"],
            "failureThreshold": 60,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": timing["pre_stop"]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": API, "labels": dict(labels)},
        "spec": {
            "replicas": deployment.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": API}},
            # One new replica ready before one old one leaves, never fewer serving: what
            # `make scale` does in the Docker runtime.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": {**labels, CONFIG_LABEL: deployment.label}},
                "spec": {
                    "automountServiceAccountToken": False,
                    # preStop sleep + drain + in-flight grace + exit margin.
                    "terminationGracePeriodSeconds": timing["grace"],
                    "securityContext": {
                        # The image's own unprivileged user (api/Dockerfile).
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
                    ],
                },
            },
        },
    }


def deployment_patch(deployment: Deployment) -> dict[str, Any]:
    """What an overlay changes in the base's API Deployment (a strategic-merge patch)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": API},
        "spec": {
            "replicas": deployment.replicas,
            "template": {
                "metadata": {"labels": {CONFIG_LABEL: deployment.label}},
                "spec": {
                    "containers": [
                        {
                            "name": API,
                            "env": identity_env(deployment),
                            "resources": resources(deployment),
                        }
                    ]
                },
            },
        },
    }


def apply_deployment(
    documents: list[dict[str, Any]],
    deployment: Deployment,
    serving: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The rendered objects changed to `deployment`, as an overlay's patches change them:
    the API Deployment (replicas, the `config` label, limits, identity variables) and the
    Traefik monitor (the prediction router's name). `serving` overrides serving
    variables of the replicas (API_ENGINE...), as compose takes them from the environment."""
    out = []
    for document in documents:
        kind, name = document.get("kind"), document.get("metadata", {}).get("name")
        if kind == "Deployment" and name == API:
            document = _changed_api(document, deployment, serving or {})
        elif kind == "PodMonitor" and name == "traefik":
            document = {**document, "spec": traefik_monitor(deployment)["spec"]}
        out.append(document)
    return out


def _changed_api(
    obj: dict[str, Any], deployment: Deployment, serving: Mapping[str, str]
) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    spec = out["spec"]
    spec["replicas"] = deployment.replicas
    spec["template"]["metadata"].setdefault("labels", {})[CONFIG_LABEL] = deployment.label
    container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == API)
    container["resources"] = resources(deployment)
    wanted = {e["name"]: e for e in identity_env(deployment)}
    wanted |= {name: {"name": name, "value": value} for name, value in serving.items()}
    env = [wanted.pop(e["name"], e) for e in container.get("env", [])]
    container["env"] = env + list(wanted.values())
    return out


def traefik_objects() -> list[dict[str, Any]]:
    """The route, retry middleware and transport of the other runtimes, as Traefik's
    Kubernetes resources. No health-check block: for a Kubernetes Service Traefik
    balances over the endpoints Kubernetes marks ready, so the API's readiness probe
    (same path and timeout) is the health check here."""
    shared = sources.traefik_shared()
    retry = shared["middlewares"]["api-retry"]["retry"]
    transport = shared["serversTransports"]["api-transport"]
    return [
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "api-retry", "labels": dict(PART_OF)},
            "spec": {"retry": dict(retry)},
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "ServersTransport",
            "metadata": {"name": "api-transport", "labels": dict(PART_OF)},
            "spec": dict(transport),
        },
        *(route(name, rule) for name, rule in sorted(sources.router_rules().items())),
    ]


def route(name: str, rule: str) -> dict[str, Any]:
    """An IngressRoute to the API Service. Traefik names its router
    `<namespace>-<name>-<hash>@kubernetescrd`; the Traefik monitor renames the `predict`
    one to `predict-<config>@kubernetescrd`, the name prometheus/rules/layers.yml reads
    the config from (docker-compose.yaml names it so with a label)."""
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {
                    "kind": "Rule",
                    "match": rule,
                    "middlewares": [{"name": "api-retry"}],
                    "services": [
                        {
                            "kind": "Service",
                            "name": API,
                            "port": API_PORT,
                            "serversTransport": "api-transport",
                            "passHostHeader": True,
                        }
                    ],
                }
            ],
        },
    }


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def le_relabelings() -> list[dict[str, Any]]:
    """prometheus.docker.yml's `le` normalisation in the Prometheus Operator's spelling."""
    return [{_camel(k): v for k, v in rule.items()} for rule in sources.le_relabeling()]


def _dns_name(stem: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")


def prometheus_rules() -> list[dict[str, Any]]:
    """One PrometheusRule per file of prometheus/rules/, its groups unchanged."""
    out = []
    for path in sources.rule_files():
        groups = yaml.safe_load(path.read_text())["groups"]
        out.append(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PrometheusRule",
                "metadata": {"name": f"lab-{_dns_name(path.stem)}", "labels": dict(PART_OF)},
                "spec": {"groups": groups},
            }
        )
    return out


def dashboards() -> list[dict[str, Any]]:
    """One ConfigMap per dashboard of grafana/dashboards/, for Grafana's sidecar."""
    out = []
    for path in sources.dashboard_files():
        text = path.read_text()
        # The file must be the JSON Grafana reads: a broken one fails here, not in Grafana.
        json.loads(text)
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"grafana-dashboard-{_dns_name(path.stem)}",
                    "labels": {**DASHBOARD_LABEL, **PART_OF},
                    # The sidecar's folderAnnotation (kube-prometheus-stack's default key).
                    "annotations": {"grafana_folder": "Capacity lab"},
                },
                "data": {path.name: text},
            }
        )
    return out


def scrape_interval() -> str:
    """The Docker runtime's scrape interval (prometheus.docker.yml), kept here."""
    return str(yaml.safe_load(sources.PROMETHEUS_DOCKER.read_text())["global"]["scrape_interval"])


def _job(name: str) -> dict[str, str]:
    return {"targetLabel": "job", "replacement": name, "action": "replace"}


def predict_router(deployment: Deployment) -> str:
    """`predict-r2-c1_0-m1g`: the router name the rules read the config from, as the
    other runtimes name it (a dot is written `_`; lab/runtimes/native/configs.py)."""
    return "predict-" + deployment.label.replace(".", "_")


def traefik_monitor(deployment: Deployment) -> dict[str, Any]:
    """Traefik's own pods (the Helm chart's labels and metrics port), with the
    prediction router renamed after the config the API serves."""
    rename = {
        "sourceLabels": ["router"],
        "regex": "(?:.+-)?predict-[0-9a-f]+@kubernetescrd",
        "targetLabel": "router",
        "replacement": f"{predict_router(deployment)}@kubernetescrd",
        "action": "replace",
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "traefik", "labels": dict(PART_OF)},
        "spec": {
            "namespaceSelector": {"matchNames": ["traefik"]},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
            "podMetricsEndpoints": [
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "interval": scrape_interval(),
                    "relabelings": [_job("traefik")],
                    "metricRelabelings": [*le_relabelings(), rename],
                }
            ],
        },
    }


def monitors(deployment: Deployment) -> list[dict[str, Any]]:
    """What the Prometheus Operator scrapes, with the `job`, `replica` and `config`
    labels the recording rules select on (the same as the other runtimes' targets)."""
    interval = scrape_interval()
    return [
        {
            # One target per API pod: `replica` is the pod's name (also the replica's own
            # API_REPLICA), `config` the pod's lab.config label.
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": API, "labels": dict(PART_OF)},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": API}},
                "podMetricsEndpoints": [
                    {
                        "port": "http",
                        "path": "/metrics",
                        "interval": interval,
                        "relabelings": [
                            _job(API),
                            {
                                "sourceLabels": ["__meta_kubernetes_pod_name"],
                                "targetLabel": "replica",
                                "action": "replace",
                            },
                            {
                                "sourceLabels": ["__meta_kubernetes_pod_label_lab_config"],
                                "targetLabel": "config",
                                "action": "replace",
                            },
                        ],
                    }
                ],
            },
        },
        traefik_monitor(deployment),
        {
            # Locust's stats: honorLabels keeps the pushed job, run_id and config labels.
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "pushgateway", "labels": dict(PART_OF)},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "pushgateway"}},
                "endpoints": [
                    {
                        "port": "http",
                        "interval": interval,
                        "honorLabels": True,
                        "relabelings": [_job("pushgateway")],
                        "metricRelabelings": le_relabelings(),
                    }
                ],
            },
        },
    ]
