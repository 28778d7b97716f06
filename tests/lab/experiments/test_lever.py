"""The engine as a lever and the errors-by-origin table, from synthetic results (no
processes): CPU per prediction and P95 side by side, a knee printed as measured only
when the host was not the limit, and the self-check covering both."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import LabError
from lab.experiments import consistency, judge, lever
from lab.experiments.plan import load_experiment
from lab.experiments.report import render
from lab.experiments.results import ConfigResult, ExperimentResults, Step, load, save
from tests.lab.experiments.synthetic import PLAN, results, window

LEVER_PLAN = {"service": {"engine": "onnx", "batching": "on"}, "rates": [200], "refine": 0}


def lever_step(rate: float, host_busy: float = 0.5, offered: float | None = None) -> Step:
    """Three windows of the optimised engine: a tenth of the baseline's CPU (0.045 of
    0.5 cores at 50/s), P95 20 ms."""
    windows = []
    for _ in range(3):
        m = window("r1-c0.5-m512m", offered or rate, p95=0.02, cpu=0.05 * rate / 50)
        m.host_busy = host_busy
        windows.append(m)
    return Step(
        rate,
        windows,
        judge.step_within_slo(windows),
        judge.step_sustained(windows),
        judge.step_flags(windows, 1, 2),
    )


def with_lever(*steps: Step) -> ExperimentResults:
    data = results()
    data.plan = {**PLAN, "engine_lever": LEVER_PLAN}
    measured = ConfigResult("r1-c0.5-m512m", 1, 0.5, 2**29, steps=list(steps))
    measured.knee_rps, measured.knee_upper_rps = judge.knee(measured.steps)
    measured.meets_target = judge.meets_target(measured.steps, 50)
    data.engine_lever = measured
    return data


def test_the_lever_sets_cpu_per_prediction_and_p95_against_the_baseline() -> None:
    data = with_lever(lever_step(50), lever_step(200))
    # The synthetic baseline fails at 50/s: 0.45 cores for 36 predictions/s = 12.5 CPU-s
    # per 1,000; the lever 0.045 cores for 45 predictions/s = 1.0.
    found = lever.of(data)
    assert found is not None
    assert found.baseline.cpu_per_1000 is not None and found.lever.cpu_per_1000 is not None
    assert found.baseline.cpu_per_1000.median == pytest.approx(12.5)
    assert found.lever.cpu_per_1000.median == pytest.approx(1.0)
    assert found.cpu_ratio == pytest.approx(12.5)
    assert found.knee.kind == "lower-bound"

    text = render(data)

    assert "## 6. The engine as a lever" in text
    assert "spends **12.5x less CPU per prediction**" in text
    assert "its knee is at least that (a lower bound)" in text
    # The baseline misses the target (its knee is 25): its CPU per prediction is a floor.
    assert "is a floor, and the ratio with it" in text
    # Busy cores at the target: 12.5 CPU-s per 1,000 x 45 predictions/s, above its limit.
    assert "| sklearn, batching off | 0.56 |" in text
    assert "| <= 0.50 | measured: r1-c0.5-m512m met the target" in text
    assert "checks hold" in text


def test_a_host_limited_lever_prints_no_knee_as_measured() -> None:
    # At 200/s the host is saturated, and at 400/s the generator drew only 300 arrivals/s.
    data = with_lever(lever_step(50), lever_step(200, host_busy=0.97), lever_step(400, 0.6, 300))

    reading = lever.knee_reading(data.engine_lever)  # type: ignore[arg-type]
    text = render(data)

    assert reading.kind == "host-limited"
    assert reading.limits == ["200/s: host-saturated"]
    assert reading.short == ["400/s drew 300.0/s"]
    assert "knee is not measured here** (200/s: host-saturated; the generator 400/s" in text
    assert "not measured (host-limited)" in text
    assert "| r1-c0.5-m512m (onnx) | 200/s | host-saturated | yes |" in text


def test_a_failing_step_above_trusted_ones_brackets_a_measured_knee() -> None:
    failing = lever_step(400, offered=400)
    for m in failing.windows:
        m.layers["client"].p95_s = 2.0
    failing.passed = judge.step_within_slo(failing.windows)
    data = with_lever(lever_step(50), lever_step(200), failing)

    assert lever.knee_reading(data.engine_lever).kind == "measured"  # type: ignore[arg-type]
    text = render(data)
    assert "knee on r1-c0.5-m512m: 200 requests/s (fails at 400)" in text
    # The proportional model on that knee: 400 req/s per core, 0.125 cores for 50/s.
    assert "| 0.12 | proportional to its knee: 400 req/s per core |" in text


def test_the_self_check_covers_the_lever_and_it_survives_a_round_trip(tmp_path: Path) -> None:
    data = with_lever(lever_step(50), lever_step(200))
    save(data, tmp_path)
    stored = load(tmp_path)
    assert stored.engine_lever is not None and len(stored.engine_lever.steps) == 2
    assert (tmp_path / "results.csv").read_text().count(",lever-step,") == 6
    assert all(c.holds for c in consistency.checks(stored))

    stored.engine_lever.knee_rps = 400  # a knee its steps do not support

    failed = [c.what for c in consistency.checks(stored) if not c.holds]
    assert any("engine lever r1-c0.5-m512m: knee 400" in what for what in failed)


def test_errors_by_origin_share_question_one_s_denominator() -> None:
    data = results()
    small = data.configs[0]
    target = next(s for s in small.steps if s.rate == 50)
    for m in target.windows:
        m.layers["client"].error_ratio = 0.10
        m.errors_by_origin = {"app": 0.09, "proxy": 0.0, "client": 0.01}
    text = render(data)
    assert "| r1-c0.5-m512m | 10.00% | 9.00% | 0.00% | 1.00% |" in text
    assert all(c.holds for c in consistency.checks(data))

    # Shares of every request (predictions and the rest) instead: the self-check objects.
    for m in target.windows:
        m.errors_by_origin = {k: v * 0.9 for k, v in m.errors_by_origin.items()}

    failed = [c.what for c in consistency.checks(data) if not c.holds]
    assert any("errors by origin at 50/s are shares" in what for what in failed)


PLAN_TEXT = """
name: p
service: {engine: sklearn, batching: "off"}
target: {arrival_rate: 50}
capacity: {rates: [50]}
configs:
  - {replicas: 2, cpus: 0.5, memory: 512m}
  - {replicas: 1, cpus: 0.5, memory: 512m}
"""


def test_the_lever_plan_defaults_to_the_smallest_config_and_refuses_nonsense(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.yml"
    path.write_text(PLAN_TEXT + "engine_lever: {rates: [200]}\n")
    plan = load_experiment(path)
    deployment = plan.lever_deployment()
    assert deployment is not None and deployment.label == "r1-c0.5-m512m"
    assert plan.lever_rates() == [50, 200]

    path.write_text(PLAN_TEXT + 'engine_lever: {service: {engine: sklearn, batching: "off"}}\n')
    with pytest.raises(LabError, match=r"engine_lever\.service is the plan's own service"):
        load_experiment(path)
    path.write_text(PLAN_TEXT + "engine_lever: {config: {replicas: 1, cpus: 1, memory: 1g}}\n")
    with pytest.raises(LabError, match=r"is not one of the plan's configs"):
        load_experiment(path)
