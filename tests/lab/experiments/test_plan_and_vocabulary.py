from __future__ import annotations

from pathlib import Path

import pytest

from lab.core import Deployment, ResourceError
from lab.errors import LabError
from lab.experiments.plan import load_experiment, window_problem
from lab.experiments.vocabulary import expression, range_of, windowed
from tests.support import REPO


@pytest.mark.parametrize("name", ["default", "onnx", "quick", "workshop3", "workshop-10k"])
def test_shipped_experiment_files_load(name: str) -> None:
    experiment = load_experiment(REPO / "experiments" / f"{name}.yml")

    assert experiment.configs
    assert all(d.label.startswith("r") for d in experiment.deployments())


def test_default_experiment_is_the_workshop_matrix_plus_two_half_cpus() -> None:
    labels = [d.label for d in load_experiment(REPO / "experiments" / "default.yml").deployments()]

    assert labels == ["r1-c0.5-m512m", "r1-c1.0-m1g", "r2-c1.0-m1g", "r2-c0.5-m512m"]


def test_plan_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    good = "name: x\ntarget: {arrival_rate: 10}\ncapacity: {rates: [10, 50]}\n"
    path.write_text(good + "configs:\n  - {replicas: 1, cpus: lots}\n")
    with pytest.raises(LabError, match=r"bad\.yml.*CPUS='lots'"):
        load_experiment(path)
    path.write_text(good.replace("[10, 50]", "[50, 10]") + "configs: [{replicas: 1}]\n")
    with pytest.raises(LabError, match="increasing"):
        load_experiment(path)
    path.write_text(good.replace("]}", "], window: soon}") + "configs: [{replicas: 1}]\n")
    with pytest.raises(LabError, match="not a duration"):
        load_experiment(path)
    path.write_text(good.replace("arrival_rate: 10", "users: 10") + "configs: [{replicas: 1}]\n")
    with pytest.raises(LabError, match="arrival_rate"):
        load_experiment(path)
    with pytest.raises(LabError, match="cannot read"):
        load_experiment(tmp_path / "missing.yml")


def test_the_target_rate_is_always_a_step() -> None:
    experiment = load_experiment(REPO / "experiments" / "default.yml")

    rates = experiment.capacity.with_target(experiment.target.arrival_rate)

    assert experiment.target.arrival_rate in rates
    assert rates == sorted(rates)
    assert experiment.capacity.repeats >= 3
    assert experiment.capacity.window >= 20


def test_config_labels_round_trip() -> None:
    for label in ("r2-c1.0-m1g", "r1-c0.5-m512m", "r4-cmax-mmax", "r3-c0.25-m768m"):
        assert Deployment.from_label(label).label == label
    with pytest.raises(ResourceError):
        Deployment.from_label("two replicas")


def test_windowed_rule_expressions_keep_the_rule_and_narrow_the_run() -> None:
    rule = expression("config:requests:rate1m", "client")
    query = windowed("config:requests:rate1m", 42.4, "client", run_id="abc")

    assert "[1m]" in rule
    assert query == rule.replace("[1m]", "[42s]").replace(
        'job="locust"', 'job="locust", run_id="abc"'
    )
    assert range_of(0.2) == "1s"
    with pytest.raises(KeyError, match="no recording rule"):
        expression("config:nothing:rate1m")


def test_rules_that_read_other_recorded_rules_are_inlined_with_their_window() -> None:
    query = windowed("config:errors:rate1m", 20, "edge")

    assert "[1m]" not in query and "[20s]" in query
    assert "config_code:" not in query
    # A reference's matchers go into the inner rule's selector.
    assert 'code=~"5.."}[20s]' in query


def test_a_window_spans_twenty_pushes_and_four_scrapes(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        "name: x\ntarget: {arrival_rate: 10}\ncapacity: {rates: [10], window: 8s}\n"
        "configs: [{replicas: 1}]\n"
    )
    plan = load_experiment(path)

    assert "at least 20 pushes" in (window_problem(plan, 1, 1.0) or "")
    assert window_problem(plan, 1, 0.4) is None
    assert "under 4 scrape intervals" in (window_problem(plan, 5, 0.4) or "")
