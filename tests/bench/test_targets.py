"""The benchmark's fixed points must answer what ours answers, or the comparison is void."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.edge import EdgePoint, edge_markdown, summarize_edge
from bench.serving import Point, ServingBenchSettings, markdown, summarize
from bench.targets import bare_asgi, fixed_app, naive_app

PENGUIN = {
    "island": "Biscoe",
    "bill_length_mm": 48.6,
    "bill_depth_mm": 16.0,
    "flipper_length_mm": 230.0,
    "body_mass_g": 5800.0,
    "sex": "male",
}


def test_the_naive_server_predicts_like_the_model(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_MODEL_DIR", str(model_dir))
    response = TestClient(naive_app()).post("/predict", json=PENGUIN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["species"] == "Gentoo"
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert TestClient(naive_app()).post("/predict", json={"island": "Atlantis"}).status_code == 422


@pytest.mark.parametrize("app", [fixed_app(), bare_asgi], ids=["fixed", "bare"])
def test_the_ceilings_answer_a_prediction_shaped_body(app: object) -> None:
    response = TestClient(app).post("/predict", json=PENGUIN)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert set(response.json()) == {"species", "probabilities", "model_version"}


def point(
    server: str, connections: int, rps: float, p50_ms: float, errors: int = 0, run: int = 1
) -> Point:
    return Point(
        server, connections, rps, p50_ms, p50_ms * 1.5, p50_ms * 2, errors, 1000, 10.0, run
    )


EDGE = {
    "placement": "replicas on CPU 0",
    "replica_cpus": 0.25,
    "connections": 128,
    "points": [],
    "efficiency": 0.8,
    "scaling_1_to_2": 1.9,
}


def test_the_summary_judges_each_goal_on_the_median_of_paired_runs() -> None:
    settings = ServingBenchSettings(concurrencies=[1, 128], repeats=3)
    points = [
        point("ours", 1, 3000, 0.5),
        point("ours", 128, 9000, 10.0),
        point("naive", 1, 100, 10),
        point("naive", 128, 100, 1500),
        point("ceiling", 1, 5000, 0.3),
        point("ceiling", 128, 8000, 16),
        # A noisy pair: both sides slowed down together, the ratio holds.
        point("ours", 128, 4400, 20.0, run=2),
        point("ceiling", 128, 4000, 30, run=2),
        point("ours", 128, 7000, 12.0, run=3),
        point("ceiling", 128, 8000, 16, run=3),
    ]

    result = summarize(points, settings, EDGE)

    assert result["ratios"]["ours_vs_ceiling"] == {"median": 1.1, "min": 0.875, "max": 1.125}
    assert result["ratios"]["ours_p99_over_p50"]["median"] == 2.0
    assert result["ratios"]["ours_vs_naive"] == 70.0
    assert list(result["goals"].values()) == [True, True, True, False]
    text = markdown(result)
    assert "**70x** the naive server" in text
    assert "**110% (runs: 88% to 112%)**" in text
    assert "3 alternating pairs" in text


def test_an_error_fails_the_ceiling_goal_whatever_the_speed() -> None:
    settings = ServingBenchSettings(concurrencies=[128], repeats=1)
    points = [
        point("ours", 128, 9000, 10.0, errors=1),
        point("naive", 128, 100, 1500),
        point("ceiling", 128, 8000, 16),
    ]

    result = summarize(points, settings)

    assert next(iter(result["goals"].values())) is False
    assert "Traefik" not in " ".join(result["goals"])


def edge_point(replicas: int, through: bool, rps: float, cores: float, run: int = 1) -> EdgePoint:
    return EdgePoint(
        name=f"{replicas} {'through Traefik' if through else 'direct'}",
        replicas=replicas,
        through_traefik=through,
        rps=rps,
        p50_ms=10.0,
        p99_ms=20.0,
        errors=0,
        replica_cores=cores,
        rps_per_replica_core=rps / cores,
        traefik_cpu_s_per_1000=0.15 if through else None,
        traefik_cores=0.3 if through else None,
        run=run,
    )


def test_edge_efficiency_is_the_median_of_paired_runs_per_replica_core() -> None:
    points = [
        edge_point(1, False, 2000, 0.25),
        edge_point(1, True, 1800, 0.25),
        # A replica that could not use its whole quota through Traefik: per core it
        # served as much as direct, whatever its requests/s.
        edge_point(1, False, 2000, 0.25, run=2),
        edge_point(1, True, 1600, 0.20, run=2),
        edge_point(1, False, 2000, 0.25, run=3),
        edge_point(1, True, 1400, 0.25, run=3),
        edge_point(2, True, 3400, 0.5),
    ]

    edge = summarize_edge(points, "replicas on CPU 0", 0.25)

    assert edge["efficiency_runs"] == [0.9, 1.0, 0.7]
    assert edge["efficiency"] == 0.9
    assert edge["scaling_1_to_2"] == 2.125
    text = "\n".join(edge_markdown(edge))
    assert "**90%** (median; runs: 90%, 100%, 70%)" in text
    assert "**2.12x**" in text


def test_a_lever_pair_is_reported_apart_and_never_counts_towards_the_goal() -> None:
    lever = "API_BATCH_MAX_WAIT_MS=1"
    waiting = [edge_point(1, False, 2400, 0.25), edge_point(1, True, 2280, 0.25)]
    for point in waiting:
        point.lever = lever
    points = [
        edge_point(1, False, 2000, 0.25),
        edge_point(1, True, 1600, 0.25),
        edge_point(2, True, 3200, 0.5),
        *waiting,
    ]

    edge = summarize_edge(points, "replicas on CPU 0", 0.25)

    assert edge["efficiency_runs"] == [0.8]
    assert edge["scaling_1_to_2"] == 2.0
    assert edge["lever_efficiency"] == {lever: 0.95}
    text = "\n".join(edge_markdown(edge))
    assert f"| 1 through Traefik, {lever} | 1 | 2,280 |" in text
    assert f"With {lever} (one pair) the replica serves 95% through Traefik" in text
