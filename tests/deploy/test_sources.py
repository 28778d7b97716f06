"""One source of truth: deploy/k8s/'s generated parts are exactly what `python -m lab.k8s`
makes from the files the other runtimes use, and a change to a source shows as drift."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lab.k8s import files, objects, sources
from lab.k8s.__main__ import main


def test_committed_generated_files_match_their_sources() -> None:
    # When this fails: run `python -m lab.k8s` and commit deploy/k8s/.
    assert files.drift() == []


def test_check_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert capsys.readouterr().err == ""


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The generated files written from the current sources into a folder of this test,
    so the checks below start from no drift whatever the working tree holds."""
    monkeypatch.setattr(files, "GENERATED", tmp_path / "base" / "generated")
    monkeypatch.setattr(files, "OVERLAYS", tmp_path / "overlays")
    files.write()
    assert files.drift() == []
    return tmp_path


def test_a_changed_dashboard_is_drift(
    written: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = written / "dashboards"
    shutil.copytree(sources.DASHBOARDS_DIR, copy)
    first = sorted(copy.glob("*.json"))[0]
    first.write_text(first.read_text().replace('"title"', '"title" ', 1))
    monkeypatch.setattr(sources, "DASHBOARDS_DIR", copy)

    assert files.drift() == [f"{written}/base/generated/dashboards.yaml differs from its sources"]
    assert main(["--check"]) == 1
    assert "run `python -m lab.k8s` and commit" in capsys.readouterr().err


def test_a_new_rule_file_and_a_new_matrix_config_are_drift(
    written: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = written / "rules"
    shutil.copytree(sources.RULES_DIR, rules)
    (rules / "extra.yml").write_text("groups:\n  - name: extra\n    rules: []\n")
    plan = yaml.safe_load(sources.MATRIX.read_text())
    plan["configs"].append({"replicas": 3, "cpus": 0.25, "memory": "256m"})
    matrix = written / "plan.yml"
    matrix.write_text(yaml.safe_dump(plan))
    monkeypatch.setattr(sources, "RULES_DIR", rules)
    monkeypatch.setattr(sources, "MATRIX", matrix)

    assert files.drift() == [
        f"{written}/base/generated/prometheus-rules.yaml differs from its sources",
        f"{written}/overlays/r3-c0.25-m256m/api.yaml is missing",
        f"{written}/overlays/r3-c0.25-m256m/kustomization.yaml is missing",
        f"{written}/overlays/r3-c0.25-m256m/traefik-monitor.yaml is missing",
    ]


def test_a_config_dropped_from_the_matrix_leaves_a_stale_overlay(
    written: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = yaml.safe_load(sources.MATRIX.read_text())
    config = plan["configs"].pop()
    dropped = objects.Deployment.parse(
        config["replicas"], str(config["cpus"]), str(config["memory"])
    )
    matrix = written / "plan.yml"
    matrix.write_text(yaml.safe_dump(plan))
    monkeypatch.setattr(sources, "MATRIX", matrix)

    assert files.drift() == [f"{written}/overlays/{dropped.label} is no longer in the matrix"]
    files.write()
    assert not (written / "overlays" / dropped.label).exists()
    assert files.drift() == []


def test_rules_are_the_prometheus_rule_files_unchanged() -> None:
    rules = {r["metadata"]["name"]: r["spec"]["groups"] for r in objects.prometheus_rules()}

    assert rules == {
        f"lab-{path.stem}": yaml.safe_load(path.read_text())["groups"]
        for path in sources.rule_files()
    }


def test_dashboards_are_the_grafana_files_for_the_sidecar() -> None:
    maps = objects.dashboards()

    assert {name: text for m in maps for name, text in m["data"].items()} == {
        path.name: path.read_text() for path in sources.dashboard_files()
    }
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)


def test_generated_yaml_reads_back_as_the_objects() -> None:
    text = files.generated()[files.GENERATED / "dashboards.yaml"]

    assert list(yaml.safe_load_all(text)) == objects.dashboards()


def test_traefik_retry_and_transport_are_shared_yml() -> None:
    shared = sources.traefik_shared()
    by_kind = {o["kind"]: o for o in objects.traefik_objects()}

    assert by_kind["Middleware"]["spec"]["retry"] == shared["middlewares"]["api-retry"]["retry"]
    assert by_kind["ServersTransport"]["spec"] == shared["serversTransports"]["api-transport"]
    routes = {
        o["metadata"]["name"]: o["spec"]["routes"][0]["match"]
        for o in objects.traefik_objects()
        if o["kind"] == "IngressRoute"
    }
    assert routes == sources.router_rules()


def test_the_prediction_router_is_renamed_as_the_rules_expect() -> None:
    deployment = objects.Deployment.from_label("r2-c0.5-m512m")
    rename = objects.traefik_monitor(deployment)["spec"]["podMetricsEndpoints"][0][
        "metricRelabelings"
    ][-1]

    # Traefik names an IngressRoute's router <namespace>-<name>-<hash>@kubernetescrd.
    import re

    assert re.fullmatch(rename["regex"], "capacity-lab-predict-2f6c1a9e0b4d7c3e8a11@kubernetescrd")
    assert not re.fullmatch(rename["regex"], "capacity-lab-api-2f6c1a9e0b4d7c3e8a11@kubernetescrd")
    assert rename["replacement"] == "predict-r2-c0_5-m512m@kubernetescrd"


def test_unlimited_deployments_are_refused_for_kubernetes() -> None:
    with pytest.raises(ValueError, match="need CPU and memory limits"):
        objects.resources(objects.Deployment(2, None, None))
