"""`make experiment` end to end on the native stack, with a tiny matrix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lab.experiments.measure import WindowReader
from lab.experiments.raw import ReplayPrometheus
from lab.experiments.results import load
from monitoring.prom import Prometheus
from tests.lab.runtimes.native.lab import NativeLab
from tests.support import PYTHON, REPO

pytestmark = pytest.mark.slow

# Locust pushes every 0.4 s here (LAB_PUSH_INTERVAL_SECONDS), so 20 pushes fit in 8 s.
PUSH_INTERVAL = "0.4"

TINY = """
name: tiny
description: Two small deployments, one window per step, for the test suite.
service: {engine: onnx, batching: "on"}
target: {arrival_rate: 40}
failover: {enabled: true, users: 10, think_time: 0.2s, duration: 6s, kill_after: 2s}
capacity: {rates: [40], settle: 1s, window: 8s, repeats: 1, latency_budget: 1s, refine: 0}
configs:
  - {replicas: 1, cpus: 0.5, memory: 256m}
  - {replicas: 2, cpus: 0.5, memory: 256m}
# The lever the other way round (the slow engine), so the replicas' restart with another
# engine is exercised at one step of the target's rate on the plan's smallest config.
engine_lever: {service: {engine: sklearn, batching: "off"}}
"""

STARVED = """
name: starved
description: A load generator held to 0.15 CPU offering 300 arrivals/s to a fast service.
service: {engine: onnx, batching: "on"}
target: {arrival_rate: 300}
failover: {enabled: false}
load_generator: {cpus: 0.15}
capacity: {rates: [300], settle: 1s, window: 8s, repeats: 1, latency_budget: 1s, refine: 0}
configs:
  - {replicas: 1, cpus: 1, memory: 512m}
"""


def run_experiment(lab: NativeLab, tmp_path: Path, plan: str, name: str) -> Path:
    plan_file = tmp_path / f"{name}.yml"
    plan_file.write_text(plan)
    results = tmp_path / "results"
    result = subprocess.run(
        [PYTHON, "-m", "lab", "experiment"],
        cwd=REPO,
        env={
            **lab.env,
            "FILE": str(plan_file),
            "RESULTS_DIR": str(results),
            "RUNTIME": "native",
            "LAB_PUSH_INTERVAL_SECONDS": PUSH_INTERVAL,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (folder,) = [p for p in results.iterdir() if p.name.endswith(name)]
    return folder


def lab_scrape_interval(lab: NativeLab) -> float:
    return float(lab.env["LAB_SCRAPE_INTERVAL_SECONDS"])


def fresh(prometheus: Prometheus, query: str, at: float) -> float:
    (sample,) = prometheus.query(query, time=at)
    return sample.value


def test_tiny_matrix_writes_every_file_and_matches_prometheus(
    lab: NativeLab, tmp_path: Path
) -> None:
    folder = run_experiment(lab, tmp_path, TINY, "tiny")

    for name in ("results.json", "results.csv", "report.md", "slo.png", "cpu.png", "knee.png"):
        assert (folder / name).stat().st_size > 0, name
    data = json.loads((folder / "results.json").read_text())
    assert data["status"] == "complete"
    assert [c["label"] for c in data["configs"]] == ["r1-c0.5-m256m", "r2-c0.5-m256m"]
    report = (folder / "report.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## Self-check"):
        assert heading in report
    assert "checks hold" in report
    # Every window measured again from the raw series alone gives the stored figures.
    stored = load(folder)
    reader = WindowReader(ReplayPrometheus(folder), lab_scrape_interval(lab), float(PUSH_INTERVAL))
    assert stored.engine_lever is not None
    assert stored.engine_lever.label == "r1-c0.5-m256m"
    assert [s.rate for s in stored.engine_lever.steps] == [40]
    lever_windows = [m for s in stored.engine_lever.steps for m in s.windows]
    assert lever_windows[0].layers["client"].rps
    windows = [m for c in stored.configs for s in c.steps for m in s.windows] + lever_windows
    for m in windows:
        again = reader.measure(m.config, m.run_id, m.start, m.end)
        again.host_busy = m.host_busy
        assert again == m
    for config in data["configs"]:
        assert config["failover"]["killed"].startswith("replica-")
        assert config["steps"], "the capacity search measured no step"
        window = config["steps"][0]["windows"][0]
        assert window["offered_rate"] == pytest.approx(40, rel=0.4)
        assert window["host_busy"] is not None
        start, end, run = window["start"], window["end"], window["run_id"]
        span = f"{round(end - start)}s"
        selector = f'job="locust", run_id="{run}", name=~"POST /predict.*"'
        rps = fresh(lab.prometheus, f"sum(rate(locust_requests_total{{{selector}}}[{span}]))", end)
        buckets = f"rate(locust_request_duration_seconds_bucket{{{selector}}}[{span}])"
        p95 = fresh(lab.prometheus, f"histogram_quantile(0.95, sum by (le) ({buckets}))", end)
        server_selector = f'job="api", config="{config["label"]}", handler=~"/predict.*"'
        server = fresh(
            lab.prometheus, f"sum(rate(http_requests_total{{{server_selector}}}[{span}]))", end
        )
        assert window["layers"]["client"]["rps"] == pytest.approx(rps, rel=0.02)
        assert window["layers"]["client"]["p95_s"] == pytest.approx(p95, rel=0.02)
        assert window["layers"]["server"]["rps"] == pytest.approx(server, rel=0.02)
        assert len(window["replicas"]) == config["replicas"]
        assert all(r["cpu_limit_cores"] for r in window["replicas"])


def test_starved_generator_is_flagged(lab: NativeLab, tmp_path: Path) -> None:
    if lab.state()["cgroup_mode"] == "off":
        pytest.skip(f"no cgroups here to starve the generator: {lab.state()['cgroup_note']}")

    folder = run_experiment(lab, tmp_path, STARVED, "starved")

    report = (folder / "report.md").read_text()
    assert "load generator saturated" in report
    assert "no (see flags)" in report
    data = json.loads((folder / "results.json").read_text())
    (config,) = data["configs"]
    kinds = {f["kind"] for f in config["steps"][0]["flags"]}
    assert "generator-saturated" in kinds


def test_report_is_rebuilt_from_stored_results(tmp_path: Path) -> None:
    results = tmp_path / "stored"
    results.mkdir()
    plan = {
        "description": "",
        "service": {"engine": "onnx", "batching": "on"},
        "target": {"arrival_rate": 10},
    }
    stored = {"name": "stored", "plan": plan, "runtime": "native", "machine": {}, "started": 0}
    (results / "results.json").write_text(json.dumps({**stored, "configs": []}))

    result = subprocess.run(
        ["make", "report", f"RUN={results}"], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert "No deployment was measured yet." in (results / "report.md").read_text()
