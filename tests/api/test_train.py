from __future__ import annotations

import json
import subprocess
from pathlib import Path

from api.artefact import card_digest
from tests.support import PYTHON, REPO


def run_train(model_dir: Path) -> tuple[str, dict]:
    result = subprocess.run(
        [PYTHON, "-m", "api.train"],
        cwd=REPO,
        env={"API_MODEL_DIR": str(model_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return result.stdout, json.loads((model_dir / "metadata.json").read_text())


def test_training_twice_gives_the_same_model_and_metrics(tmp_path: Path) -> None:
    out_a, first = run_train(tmp_path / "a")
    out_b, second = run_train(tmp_path / "b")

    assert first["metrics"] == second["metrics"]
    assert first["model_version"] == second["model_version"]
    assert first["artefacts"]["joblib"]["sha256"] == second["artefacts"]["joblib"]["sha256"]
    # The pin survives retraining the same model: the date is not part of the card digest.
    assert first["card_sha256"] == second["card_sha256"]
    assert "test accuracy" in out_a
    assert out_a.splitlines()[1:] == out_b.splitlines()[1:]


def test_training_prints_the_card_digest_to_pin(tmp_path: Path) -> None:
    out, metadata = run_train(tmp_path / "model")

    assert metadata["card_sha256"] == card_digest(metadata)
    assert out.splitlines()[-1].endswith(f"API_MODEL_SHA256={metadata['card_sha256']}")
    for name in ("metadata.json", "model.joblib", "model.onnx"):
        # Readable by a service running as another user (a container's non-root user).
        assert (tmp_path / "model" / name).stat().st_mode & 0o777 == 0o644


def test_metadata_is_a_complete_model_card(model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())

    assert metadata["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert set(metadata["features"]) == {
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
    }
    assert metadata["features"]["sex"]["nullable"] is True
    assert metadata["features"]["body_mass_g"]["observed_min"] > 0
    assert 0 < metadata["metrics"]["test_accuracy"] <= 1
    assert 0 < metadata["metrics"]["test_macro_f1"] <= 1
    assert len(metadata["training_data"]["sha256"]) == 64
    assert metadata["training_data"]["test_rows"] + metadata["training_data"]["train_rows"] == 344
    assert metadata["framework"]["scikit-learn"]
    assert metadata["created_at"]
    parity = metadata["artefacts"]["onnx"]["parity"]
    assert parity["rows"] == 344
    assert parity["max_abs_diff"] <= parity["tolerance"]
