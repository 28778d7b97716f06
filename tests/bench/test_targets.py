"""The benchmark's fixed points must answer what ours answers, or the comparison is void."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

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


def point(server: str, connections: int, rps: float, p95_ms: float, errors: int = 0) -> Point:
    return Point(server, connections, rps, p95_ms / 2, p95_ms, p95_ms * 1.2, errors, 1000, 10.0)


def test_the_summary_judges_each_goal_on_its_own_point() -> None:
    settings = ServingBenchSettings(concurrencies=[1, 128])
    points = [
        point("ours", 1, 3000, 0.5),
        point("ours", 128, 6000, 30.0),
        point("naive", 1, 100, 10),
        point("naive", 128, 100, 1500),
        point("ceiling", 1, 5000, 0.3),
        point("ceiling", 128, 8000, 16),
    ]
    result = summarize(points, settings)
    assert result["ratios"] == {"ours_vs_naive": 60.0, "ours_vs_ceiling": 0.75}
    assert list(result["goals"].values()) == [True, False, True, False, True]
    text = markdown(result)
    assert "**60x** the naive server" in text and "**75%**" in text
    assert text.count("| NO |") == 2
