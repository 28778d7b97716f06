"""`K8sRuntime`: the lab's contract on a Kubernetes cluster, through kubectl.

`up` and `scale` render the kustomization (deploy/k8s/base unless LAB_KUSTOMIZATION
says otherwise), set the deployment on the rendered objects exactly as the generated
overlays do (lab/k8s/objects.py: replicas, requests = limits, the `config` label, the
Traefik monitor's router name), apply them, and wait for the rollout: one new replica
ready before an old one leaves (maxSurge 1, maxUnavailable 0), then every replica
scraped by Prometheus with the new label. Load runs in the cluster (Locust master and
workers); the experiments' own Locust reaches the stack through `endpoints`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import yaml

from lab.core import Deployment, format_cpus, format_memory
from lab.errors import LabError
from lab.k8s.objects import API, CONFIG_LABEL, apply_deployment
from lab.k8s.sources import api_defaults
from lab.runtimes.contract import (
    Endpoints,
    GeneratorPlacement,
    LoadOptions,
    Runtime,
    UnsupportedError,
)
from lab.runtimes.k8s.kubectl import Kubectl, KubectlError
from lab.runtimes.k8s.settings import K8sSettings
from lab.runtimes.scrape import Targets, wait_scraped

NOT_RUNNING = "the lab is not deployed on the cluster; deploy it with `make up RUNTIME=k8s`"
API_PODS = "app.kubernetes.io/name=api"
LAB_PODS = "app.kubernetes.io/part-of=capacity-lab"
# What kubectl answers when Ctrl-C stopped it: the normal end of a web UI session.
INTERRUPTED = 130
_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEMORY_UNITS = {
    "": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
}  # fmt: skip


def cpu_cores(quantity: str | None) -> float | None:
    """A Kubernetes CPU quantity (`500m`, `1`) in cores."""
    match = _CPU.match(str(quantity or ""))
    if not match:
        return None
    value = float(match.group(1))
    return value / 1000 if match.group(2) else value


def memory_bytes(quantity: str | None) -> int | None:
    """A Kubernetes memory quantity (`512Mi`, `1G`, `1073741824`) in bytes."""
    match = re.match(r"^(\d+(?:\.\d+)?)([kMGT]i?)?$", str(quantity or ""))
    if not match:
        return None
    return round(float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""])


def as_list(documents: list[dict[str, Any]]) -> str:
    """Objects as one JSON `List`, what `kubectl apply/delete --filename -` reads."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})


class K8sRuntime(Runtime):
    name: ClassVar[str] = "k8s"
    title: ClassVar[str] = "Kubernetes deployment"

    def __init__(
        self,
        settings: K8sSettings | None = None,
        prometheus: Targets | None = None,
        say: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or K8sSettings()
        self.kubectl = Kubectl(self.settings)
        self._prometheus = prometheus
        self._endpoints: Endpoints | None = None
        self.say = say or (lambda message: print(message, file=sys.stderr, flush=True))
        self.sleep = sleep
        self.clock = clock

    @property
    def prometheus(self) -> Targets:
        if self._prometheus is None:
            from monitoring.prom import Prometheus

            self._prometheus = Prometheus(self.endpoints().prometheus)
        return self._prometheus

    # ------------------------------------------------------------ lifecycle
    def ensure_available(self) -> None:
        self.kubectl.run(["version", "--client"], namespace=None)
        try:
            self.kubectl.run(["get", "--raw", "/readyz"], namespace=None)
        except KubectlError as exc:
            raise LabError(
                f"kubectl reaches no cluster ({exc}); choose one with LAB_KUBE_CONTEXT or "
                "KUBECONFIG, or use RUNTIME=native"
            ) from None

    def configured(self) -> Deployment:
        return self.settings.deployment()

    def render(self, deployment: Deployment) -> list[dict[str, Any]]:
        """The kustomization's objects with `deployment` set on them."""
        if deployment.cpus is None or deployment.memory is None:
            raise LabError(
                f"{deployment.label}: Kubernetes replicas need CPU and memory limits; "
                "set CPUS and MEMORY (unlimited replicas run with RUNTIME=native or docker)"
            )
        text = self.kubectl.run(["kustomize", str(self.settings.kustomization)], namespace=None)
        documents = [doc for doc in yaml.safe_load_all(text) if doc]
        if not any(
            d.get("kind") == "Deployment" and d["metadata"]["name"] == API for d in documents
        ):
            raise LabError(f"{self.settings.kustomization} renders no Deployment named {API!r}")
        # Serving settings from the environment reach the replicas, as compose passes
        # them (an experiment plan's engine and batching arrive so).
        serving = {k: os.environ[k] for k in api_defaults() if os.environ.get(k)}
        return apply_deployment(documents, deployment, serving)

    def _apply(self, deployment: Deployment) -> None:
        documents = self.render(deployment)
        self.kubectl.run(["apply", "--filename", "-"], stdin=as_list(documents), namespace=None)

    def up(self, deployment: Deployment) -> None:
        self.say(f"applying the lab to the cluster ({deployment.label})")
        self._apply(deployment)
        self.wait_ready(deployment)

    def scale(self, deployment: Deployment, replace: bool = False) -> None:
        """Apply the deployment; Kubernetes replaces replicas one at a time. `replace`
        restarts them too when nothing in their pod changed (new API_* settings)."""
        self.require_running()
        self._apply(deployment)
        if replace:
            self.kubectl.run(["rollout", "restart", f"deployment/{API}"])
        self.wait_ready(deployment)

    def wait_ready(self, deployment: Deployment) -> None:
        """The rollout done, every replica ready with the label, and scraped."""
        timeout = f"{self.settings.ready_timeout_seconds:.0f}s"
        try:
            self.kubectl.run(["rollout", "status", f"deployment/{API}", f"--timeout={timeout}"])
        except KubectlError as exc:
            raise LabError(
                f"the API's rollout to {deployment.label} did not finish: {exc}"
            ) from None
        pods = self._ready_pods()
        wrong = [p for p in pods if p[1] != deployment.label]
        if len(pods) != deployment.replicas or wrong:
            found = ", ".join(f"{name} ({label})" for name, label in pods) or "none"
            raise LabError(
                f"expected {deployment.replicas} ready replica(s) of {deployment.label}, "
                f"found {found}"
            )
        wait_scraped(
            self.prometheus,
            API,
            {name for name, _ in pods},
            deployment.label,
            timeout_seconds=self.settings.ready_timeout_seconds,
            poll_seconds=self.settings.poll_interval_seconds,
            sleep=self.sleep,
            clock=self.clock,
            hint="(is the Prometheus Operator selecting the lab's PodMonitor? "
            "deploy/k8s/README.md)",
        )
        self.say(f"{deployment.label}: {deployment.replicas} replica(s) ready and scraped")

    def _pods(self) -> list[dict[str, Any]]:
        return self.kubectl.json(["get", "pods", "--selector", API_PODS])["items"]

    def _ready_pods(self) -> list[tuple[str, str]]:
        """(name, config label) of every API pod that is ready and not leaving."""
        out = []
        for pod in self._pods():
            meta = pod["metadata"]
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if meta.get("deletionTimestamp") or not statuses:
                continue
            if all(s.get("ready") for s in statuses):
                out.append((meta["name"], meta.get("labels", {}).get(CONFIG_LABEL, "")))
        return sorted(out)

    def down(self) -> str:
        documents = self.render(self.current() or self.configured())
        self.kubectl.run(
            ["delete", "--filename", "-", "--ignore-not-found", "--wait=false"],
            stdin=as_list(documents),
            namespace=None,
        )
        return (
            "the lab's objects are deleted from the cluster (namespace "
            f"{self.settings.namespace}); Traefik, the Prometheus Operator and Grafana "
            "belong to the cluster and stay"
        )

    # ---------------------------------------------------------- observation
    def _api(self) -> dict[str, Any] | None:
        try:
            return self.kubectl.json(["get", f"deployment/{API}"])
        except KubectlError as exc:
            if exc.not_found:
                return None
            raise

    def current(self) -> Deployment | None:
        api = self._api()
        if api is None or not api["spec"].get("replicas", 1):
            return None
        container = next(
            c for c in api["spec"]["template"]["spec"]["containers"] if c["name"] == API
        )
        limits = container.get("resources", {}).get("limits", {})
        return Deployment(
            int(api["spec"].get("replicas", 1)),
            cpu_cores(limits.get("cpu")),
            memory_bytes(limits.get("memory")),
        )

    def require_running(self) -> Deployment:
        running = self.current()
        if running is None:
            raise LabError(NOT_RUNNING)
        return running

    def label(self) -> str:
        api = self._api()
        if api is None:
            return "unknown"
        return api["spec"]["template"]["metadata"].get("labels", {}).get(CONFIG_LABEL, "unknown")

    def endpoints(self) -> Endpoints:
        """The configured URLs, or port-forwards opened for this command."""
        if self._endpoints is None:
            s = self.settings
            self._endpoints = Endpoints(
                api=s.api_url or self.kubectl.forward(s.traefik_service),
                prometheus=s.prometheus_url or self.kubectl.forward(s.prometheus_service),
                pushgateway=s.pushgateway_url
                or self.kubectl.forward(f"{s.namespace}/pushgateway:9091"),
                scrape_interval_seconds=s.scrape_interval_seconds,
            )
        return self._endpoints

    def replica_urls(self) -> list[str]:
        """Empty: pods are reached inside the cluster only (through the Service), so
        nothing on this machine calls one replica directly."""
        return []

    def status(self) -> None:
        """Deployments, then each API pod: config, readiness, restarts, limits, usage."""
        api = self._api()
        if api is None:
            raise LabError(NOT_RUNNING)
        deployments = self.kubectl.json(["get", "deployments", "--selector", LAB_PODS])["items"]
        rows = [["deployment", "ready", "wanted"]]
        for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
            status = d.get("status", {})
            rows.append(
                [
                    d["metadata"]["name"],
                    str(status.get("readyReplicas", 0)),
                    str(d["spec"].get("replicas", "hpa")),
                ]
            )
        usage = self._usage()
        table = [
            [
                "replica",
                "config",
                "phase",
                "ready",
                "restarts",
                "CPU limit",
                "memory limit",
                "CPU",
                "memory",
            ]
        ]
        for pod in sorted(self._pods(), key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            statuses = pod.get("status", {}).get("containerStatuses") or [{}]
            container = pod["spec"]["containers"][0]
            limits = container.get("resources", {}).get("limits", {})
            cpus, memory = cpu_cores(limits.get("cpu")), memory_bytes(limits.get("memory"))
            cpu_used, memory_used = usage.get(name, ("-", "-"))
            table.append(
                [
                    name,
                    pod["metadata"].get("labels", {}).get(CONFIG_LABEL, "-"),
                    pod.get("status", {}).get("phase", "-"),
                    "yes" if all(s.get("ready") for s in statuses) else "no",
                    str(sum(int(s.get("restartCount", 0)) for s in statuses)),
                    "-" if cpus is None else format_cpus(cpus),
                    "-" if memory is None else format_memory(memory),
                    cpu_used,
                    memory_used,
                ]
            )
        for line in [*_table(rows), "", *_table(table)]:
            print(line)
        if not usage:
            print("(CPU and memory need the cluster's metrics-server: `kubectl top pods` failed)")

    def _usage(self) -> dict[str, tuple[str, str]]:
        """`kubectl top pods`: CPU and memory by pod; empty without a metrics-server."""
        try:
            text = self.kubectl.run(["top", "pods", "--selector", API_PODS, "--no-headers"])
        except KubectlError:
            return {}
        rows = [line.split() for line in text.splitlines() if line.strip()]
        return {row[0]: (row[1], row[2]) for row in rows if len(row) >= 3}

    def logs(self) -> int:
        code = self.kubectl.stream(
            [
                *("logs", "--follow", "--selector", LAB_PODS, "--all-containers"),
                *("--prefix", "--tail", "20", "--max-log-requests", "32"),
            ]
        )
        return 0 if code == INTERRUPTED else code

    def limits_description(self) -> str:
        return "Kubernetes requests = limits (CFS quota and memory cgroup set by the kubelet)"

    # ---------------------------------------------------------------- usage
    def demo(self) -> None:
        from lab.runtimes.demo import burst, served_per_replica
        from monitoring.prom import Prometheus

        if self.current() is None:
            self.up(self.configured())
        endpoints = self.endpoints()
        count = 600
        statuses = burst(endpoints.api, count)
        ok = statuses.get(200, 0)
        others = dict(statuses - Counter({200: ok})) or "none"
        print(f"sent {count} predictions through Traefik: {ok} answered 200, others {others}")
        per_replica = served_per_replica(
            Prometheus(endpoints.prometheus), ok, endpoints.scrape_interval_seconds
        )
        print("predictions served per replica (from Prometheus):")
        for replica, value in sorted(per_replica.items()):
            print(f"  {replica}: {value:.0f}")
        ns = self.settings.namespace
        print(
            f"""
Where to look (port-forwards end with this command; open your own to keep them)
  API (through Traefik)  {endpoints.api}/predict
  Prometheus             {endpoints.prometheus}
  Grafana                kubectl --namespace monitoring port-forward \
                           service/kube-prometheus-stack-grafana 3000:80
  Locust                 make load RUNTIME=k8s WORKERS=4
  Stack state            make status RUNTIME=k8s     logs: make logs RUNTIME=k8s
  Change it              make scale RUNTIME=k8s REPLICAS=4 [CPUS=0.5] [MEMORY=512m]
  Remove it              make down RUNTIME=k8s   (namespace {ns})"""
        )

    def load(self, options: LoadOptions) -> int:
        """Locust's master and workers in the cluster; the web UI through a port-forward
        until Ctrl-C. Headless runs are not offered here (a Deployment restarts a master
        whose run ended): the experiments drive their own Locust through `endpoints`."""
        if options.headless:
            raise UnsupportedError(
                "headless load runs are not offered by the k8s runtime (the in-cluster master "
                "is a Deployment, restarted when a run ends): use `make load RUNTIME=k8s` for "
                "the web UI, or `make experiment RUNTIME=k8s`, whose Locust runs here"
            )
        if options.workers < 1:
            raise LabError(f"WORKERS={options.workers} must be 1 or more")
        self.require_running()
        env = {
            "LOCUST_CONFIG_LABEL": self.label(),
            "LOCUST_USERS": str(options.users),
            "LOCUST_SPAWN_RATE": f"{options.spawn_rate:g}",
            "LOCUST_SHAPE": options.shape,
            "LOCUST_ARRIVAL_RATE": f"{options.arrival_rate:g}",
        }
        self.kubectl.run(
            ["set", "env", "deployment/locust-master", *(f"{k}={v}" for k, v in env.items())]
        )
        self.kubectl.run(["scale", "deployment/locust-worker", f"--replicas={options.workers}"])
        timeout = f"--timeout={self.settings.ready_timeout_seconds:.0f}s"
        for name in ("locust-master", "locust-worker"):
            self.kubectl.run(["rollout", "status", f"deployment/{name}", timeout])
        self.say(
            f"Locust UI on http://127.0.0.1:8089 with {options.workers} worker(s) against "
            f"{env['LOCUST_CONFIG_LABEL']}; Ctrl-C closes the port-forward (the workers stay)"
        )
        code = self.kubectl.stream(["port-forward", "service/locust-master", "8089:8089"])
        return 0 if code == INTERRUPTED else code

    def place_load_generator(self, cpus: float) -> GeneratorPlacement:
        raise UnsupportedError(
            "load_generator.cpus needs the native runtime with cgroups: with RUNTIME=k8s the "
            "experiments' Locust runs on this machine without a CPU budget; remove it from the "
            "plan, or give the in-cluster workers their CPU in deploy/k8s/base/locust.yaml"
        )

    def release_load_generator(self, placement: GeneratorPlacement) -> None:
        """Nothing to release: `place_load_generator` never creates anything here."""

    # ---------------------------------------------------------------- faults
    def kill_replica(self) -> tuple[str, int]:
        """Delete one ready API pod at once (no grace, no drain), as a node failure
        would take it; its ReplicaSet starts a replacement under another name."""
        pods = self._ready_pods()
        if not pods:
            raise LabError(NOT_RUNNING)
        victim = pods[0][0]
        self.kubectl.run(["delete", "pod", victim, "--grace-period=0", "--force", "--wait=false"])
        return victim, 0

    def recovered(self, name: str, restarts_before: int) -> bool:
        """True once the killed pod is gone and as many replicas are ready as wanted."""
        wanted = self.current()
        pods = self._ready_pods()
        return (
            wanted is not None and name not in {p for p, _ in pods} and len(pods) >= wanted.replicas
        )


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
