"""Served predictions equal the fitted scikit-learn pipeline on the whole data set."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from palmerpenguins import load_penguins

from api.schemas import FEATURES, NUMERIC_FEATURES

TOLERANCE = 1e-5


def data_set() -> tuple[list[dict], np.ndarray]:
    """Every row the API can take (complete measurements; unknown sex included), as JSON
    bodies, and the same rows as the DataFrame training used."""
    frame = load_penguins().dropna(subset=list(NUMERIC_FEATURES))[list(FEATURES)]
    bodies = [
        {k: (None if k == "sex" and isinstance(v, float) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]
    return bodies, frame


@pytest.mark.parametrize(
    ("engine", "batching"), [("onnx", "off"), ("onnx", "on"), ("sklearn", "on"), ("sklearn", "off")]
)
def test_served_predictions_equal_the_pipeline_on_every_row(
    make_client, model_dir: Path, engine: str, batching: str
) -> None:
    bodies, frame = data_set()
    pipeline = joblib.load(model_dir / "model.joblib")
    expected = pipeline.predict_proba(frame)
    classes = [str(c) for c in pipeline.classes_]
    client = make_client(engine=engine, batching=batching)

    served = []
    for start in range(0, len(bodies), 100):
        response = client.post("/predict/batch", json={"instances": bodies[start : start + 100]})
        assert response.status_code == 200
        served += response.json()["predictions"]

    assert len(served) == len(bodies) == 342
    assert sum(1 for b in bodies if b["sex"] is None) == 9
    got = np.array([[p["probabilities"][c] for c in classes] for p in served])
    assert [p["species"] for p in served] == [classes[i] for i in expected.argmax(axis=1)]
    assert np.abs(got - expected).max() <= TOLERANCE
