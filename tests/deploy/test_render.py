"""deploy/k8s/ rendered by `kubectl kustomize` (offline), every object validated against
the shipped schemas of Kubernetes v1.32 and of the custom resources, and the lab's
policy checked on every workload. No cluster runs: this is all the Kubernetes runtime's
validation (deploy/k8s/README.md says so)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab.core import Deployment
from lab.k8s import objects, sources
from tests.deploy.manifests import (
    INSTALL,
    OVERLAYS,
    TARGETS,
    kubectl,
    policy_violations,
    render,
    schema_errors,
)

pytestmark = pytest.mark.skipif(kubectl() is None, reason=f"kubectl is missing: {INSTALL}")


def find(documents: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return copy.deepcopy(matches[0])


def api_container(documents: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return find(documents, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]


# ------------------------------------------------------------------ rendering and schemas


@pytest.mark.parametrize("target", TARGETS)
def test_every_kustomization_renders_into_the_labs_namespace(target: str) -> None:
    documents = render(target)

    assert {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"} == {
        "capacity-lab"
    }
    kinds = {d["kind"] for d in documents}
    assert kinds >= {
        "Namespace", "Deployment", "Service", "PodDisruptionBudget", "IngressRoute",
        "Middleware", "ServersTransport", "PodMonitor", "ServiceMonitor", "PrometheusRule",
        "ConfigMap",
    }  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_validates_against_its_pinned_schema(target: str) -> None:
    problems = {
        f"{d['kind']}/{d['metadata']['name']}": errors
        for d in render(target)
        if (errors := schema_errors(d))
    }

    assert problems == {}


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "where"),
    [
        # A misspelt field of a built-in kind (strict schema: unknown fields fail).
        ("Deployment", "api", lambda o: o["spec"].update(replica=3), "spec"),
        (
            "Deployment",
            "api",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={}),
            "spec/template/spec/containers/0",
        ),
        # A wrong type.
        ("Deployment", "api", lambda o: o["spec"].update(replicas="two"), "spec/replicas"),
        ("PodDisruptionBudget", "api", lambda o: o["spec"].update(maxUnavailble=1), "spec"),
        # Custom resources, closed by deploy/k8s/schemas/extract.py.
        ("Middleware", "api-retry", lambda o: o["spec"]["retry"].update(attemps=3), "spec/retry"),
        ("PodMonitor", "api", lambda o: o["spec"].update(podMetricEndpoints=[]), "spec"),
        (
            "PrometheusRule",
            "lab-alerts",
            lambda o: o["spec"]["groups"][0].update(rule=[]),
            "spec/groups/0",
        ),
        ("IngressRoute", "predict", lambda o: o["spec"].update(entryPoints="web"), "spec"),
    ],
)
def test_a_wrong_field_fails_validation(kind: str, name: str, mutate: Any, where: str) -> None:
    obj = find(render("base"), kind, name)
    assert schema_errors(obj) == []

    mutate(obj)

    errors = schema_errors(obj)
    assert errors, f"{kind}/{name} validated after the mutation"
    assert any(error.startswith(where) for error in errors), errors


# -------------------------------------------------------------------------------- policy


@pytest.mark.parametrize("target", TARGETS)
def test_every_workload_follows_the_labs_policy(target: str) -> None:
    workloads = [d for d in render(target) if d["kind"] == "Deployment"]

    assert {d["metadata"]["name"] for d in workloads} == {
        "api", "pushgateway", "locust-master", "locust-worker"
    }  # fmt: skip
    assert [v for d in workloads for v in policy_violations(d)] == []


@pytest.mark.parametrize(
    ("mutate", "violation"),
    [
        (lambda c: c["resources"]["limits"].pop("memory"), "no memory in limits"),
        (lambda c: c["resources"].pop("requests"), "no cpu in requests"),
        (lambda c: c.pop("livenessProbe"), "no livenessProbe"),
        (lambda c: c["securityContext"].update(readOnlyRootFilesystem=False), "writable"),
        (lambda c: c["securityContext"].update(runAsNonRoot=False), "may run as root"),
        (lambda c: c.update(image="capacity-lab/api:latest"), "untagged or latest"),
        (lambda c: c.update(image="capacity-lab/api"), "untagged or latest"),
        (lambda c: c["securityContext"]["capabilities"].update(drop=[]), "capabilities"),
    ],
)
def test_the_policy_check_catches_a_broken_container(mutate: Any, violation: str) -> None:
    deployment = find(render("base"), "Deployment", "api")
    mutate(deployment["spec"]["template"]["spec"]["containers"][0])

    assert any(violation in v for v in policy_violations(deployment))


@pytest.mark.parametrize(
    ("name", "service"),
    [("api", "api"), ("pushgateway", "pushgateway"), ("locust-master", "locust"),
     ("locust-worker", "locust-worker")],
)  # fmt: skip
def test_images_are_the_ones_docker_compose_pins(name: str, service: str) -> None:
    container = find(render("base"), "Deployment", name)["spec"]["template"]["spec"]
    compose = sources.compose()["services"][service]

    assert container["containers"][0]["image"] == compose["image"]
    assert container["securityContext"]["runAsUser"] == int(str(compose["user"]).split(":")[0])


# ----------------------------------------------------------------------------- the API


def test_api_probes_are_the_load_balancers_health_check() -> None:
    container = api_container(render("base"))
    check = sources.health_check()

    ready = container["readinessProbe"]
    assert ready["httpGet"]["path"] == check.path == "/ready"
    assert ready["failureThreshold"] == 1
    assert ready["timeoutSeconds"] == check.timeout_seconds
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_termination_grace_covers_the_whole_drain() -> None:
    pod = find(render("base"), "Deployment", "api")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    drain = sources.drain()

    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The pod keeps serving through the sleep, then drains, then finishes in-flight work.
    assert pre_stop >= container["readinessProbe"]["periodSeconds"]
    assert pre_stop >= drain.drain_seconds
    assert pod["terminationGracePeriodSeconds"] > (
        pre_stop + drain.drain_seconds + drain.shutdown_seconds
    )
    strategy = find(render("base"), "Deployment", "api")["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxSurge": 1, "maxUnavailable": 0}


def test_the_model_digest_pin_reaches_every_replica() -> None:
    documents = render("base")
    env = {e["name"]: e for e in api_container(documents)["env"]}

    ref = env["API_MODEL_SHA256"]["valueFrom"]["configMapKeyRef"]
    assert find(documents, "ConfigMap", ref["name"])["data"] == {"API_MODEL_SHA256": ""}
    assert env["API_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_a_disruption_budget_and_service_select_the_api_pods() -> None:
    documents = render("base")
    pod_labels = find(documents, "Deployment", "api")["spec"]["template"]["metadata"]["labels"]

    for selector in (
        find(documents, "PodDisruptionBudget", "api")["spec"]["selector"]["matchLabels"],
        find(documents, "Service", "api")["spec"]["selector"],
        find(documents, "PodMonitor", "api")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()


# ---------------------------------------------------------------------------- overlays


def test_overlays_are_the_experiment_matrix_plus_the_autoscalers() -> None:
    assert set(OVERLAYS) == {d.label for d in sources.matrix()} | {
        "autoscale-cpu",
        "autoscale-rps",
    }


@pytest.mark.parametrize("deployment", sources.matrix(), ids=lambda d: d.label)
def test_each_overlay_is_its_label(deployment: Deployment) -> None:
    documents = render(f"overlays/{deployment.label}")
    api = find(documents, "Deployment", "api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}

    assert api["spec"]["replicas"] == deployment.replicas
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert Deployment.parse(
        deployment.replicas, env["API_CPU_LIMIT"], env["API_MEMORY_LIMIT"]
    ) == Deployment.from_label(deployment.label)
    assert env["API_CONFIG"] == api["spec"]["template"]["metadata"]["labels"]["lab.config"]
    assert env["API_CONFIG"] == deployment.label
    # The runtime changes a rendered base exactly as the overlay does.
    assert objects.apply_deployment(list(render("base")), deployment) == list(documents)


@pytest.mark.parametrize("overlay", ["autoscale-cpu", "autoscale-rps"])
def test_autoscaled_overlays_leave_the_replica_count_to_the_hpa(overlay: str) -> None:
    documents = render(f"overlays/{overlay}")
    hpa = find(documents, "HorizontalPodAutoscaler", "api")

    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "api",
    }
    assert "replicas" not in find(documents, "Deployment", "api")["spec"]
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == ("Resource" if overlay == "autoscale-cpu" else "Pods")
