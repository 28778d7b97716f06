from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from palmerpenguins import load_penguins

from tests.support import PENGUIN, strict_json

SPECIES = {"Adelie", "Chinstrap", "Gentoo"}


def data_set_penguins(count: int) -> list[dict[str, object]]:
    # Every third row: the data set is sorted by species, and a mix shows the order.
    frame = load_penguins().dropna(subset=["bill_length_mm"]).iloc[::3].head(count)
    rows = []
    for record in frame.to_dict("records"):
        rows.append(
            {
                "island": record["island"],
                "bill_length_mm": record["bill_length_mm"],
                "bill_depth_mm": record["bill_depth_mm"],
                "flipper_length_mm": record["flipper_length_mm"],
                "body_mass_g": record["body_mass_g"],
                "sex": None if isinstance(record["sex"], float) else record["sex"],
            }
        )
    return rows


def test_predict_returns_a_species_with_probabilities_summing_to_one(client: TestClient) -> None:
    response = client.post("/predict", json=PENGUIN)

    assert response.status_code == 200
    body = strict_json(response.text)
    assert body["species"] in SPECIES
    assert set(body["probabilities"]) == SPECIES
    assert math.isclose(sum(body["probabilities"].values()), 1.0, abs_tol=1e-5)
    assert body["species"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["model_version"].startswith("rf-")


def test_predict_accepts_unknown_sex_as_null_or_missing(client: TestClient) -> None:
    with_null = client.post("/predict", json={**PENGUIN, "sex": None})
    without = client.post("/predict", json={k: v for k, v in PENGUIN.items() if k != "sex"})

    assert with_null.status_code == 200
    assert without.status_code == 200
    assert with_null.json() == without.json()


def test_batch_of_100_answers_in_order(client: TestClient) -> None:
    penguins = data_set_penguins(100)

    response = client.post("/predict/batch", json={"instances": penguins})

    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 100
    singles = [client.post("/predict", json=p).json() for p in penguins]
    assert [p["species"] for p in predictions] == [s["species"] for s in singles]
    for batch_answer, single in zip(predictions, singles, strict=True):
        for species, probability in single["probabilities"].items():
            assert batch_answer["probabilities"][species] == pytest.approx(probability, abs=1e-6)
    assert {p["species"] for p in predictions} == SPECIES


@pytest.mark.parametrize("engine", ["onnx", "sklearn"])
@pytest.mark.parametrize("batching", ["on", "off"])
def test_every_engine_and_batching_mode_answers_alike(
    make_client, engine: str, batching: str
) -> None:
    reference = make_client().post("/predict/batch", json={"instances": data_set_penguins(40)})
    client = make_client(engine=engine, batching=batching)

    response = client.post("/predict/batch", json={"instances": data_set_penguins(40)})

    assert response.status_code == 200
    got = response.json()["predictions"]
    want = reference.json()["predictions"]
    assert [p["species"] for p in got] == [p["species"] for p in want]
    assert client.get("/metadata").json()["serving"]["engine"] == engine


def test_health_ready_metadata_and_root(client: TestClient) -> None:
    health = client.get("/health")
    ready = client.get("/ready")
    metadata = client.get("/metadata")
    root = client.get("/")

    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert len(health.json()["model_sha256"]) == 64
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": health.json()["model_version"]}
    card = metadata.json()
    assert card["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert card["features"]["island"]["allowed"] == ["Biscoe", "Dream", "Torgersen"]
    assert card["metrics"]["test_accuracy"] > 0.9
    assert card["serving"]["replica"] == "test-1"
    assert "encoding" not in card
    assert root.status_code == 200
    assert root.json()["service"] == "penguin-api"


def test_openapi_documents_the_bodies(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()

    predict = schema["paths"]["/predict"]["post"]
    batch = schema["paths"]["/predict/batch"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Penguin"
    )
    assert "422" in predict["responses"]
    batch_ref = batch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    batch_schema = schema["components"]["schemas"][batch_ref.rsplit("/", 1)[-1]]
    assert batch_schema["properties"]["instances"]["maxItems"] == 256
    assert client.get("/docs").status_code == 200
