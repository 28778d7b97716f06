"""`make train`: fit the penguin species pipeline and write a verified artefact.

Writes model/model.joblib (the fitted pipeline, the source of truth), model/model.onnx
(its forest compiled for serving) and model/metadata.json (the model card). Deterministic:
the seed fixes the split and the forest, so two runs give the same metrics and the same
model version. The ONNX forest is checked against the pipeline on the whole data set and
training fails when they disagree beyond the tolerance.

The card records `card_sha256`, the digest of everything in it that affects predictions
(api/artefact.py lists what), and the command prints it as the value to pin with
API_MODEL_SHA256. It does not depend on the training date, so retraining the same model
gives the same value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import sys
import tempfile
from importlib import metadata as pkg_metadata
from importlib import resources
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from api.artefact import JOBLIB_FILE, METADATA_FILE, ONNX_FILE, card_digest, sha256_file
from api.encoding import FeatureEncoding
from api.schemas import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

TARGET = "species"


class TrainSettings(BaseSettings):
    """Training knobs (`TRAIN_` prefix); the model directory is shared with the API."""

    model_config = SettingsConfigDict(env_prefix="TRAIN_", extra="ignore", populate_by_name=True)

    model_dir: Path = Field(default=Path("model"), validation_alias="API_MODEL_DIR")
    seed: int = 42
    test_size: float = Field(default=0.25, gt=0, lt=1)
    trees: int = Field(default=100, ge=1, le=2000)
    # Largest |p_onnx - p_sklearn| accepted on any row and class.
    parity_tolerance: float = Field(default=1e-5, gt=0)


def load_data() -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """The Palmer penguins CSV shipped inside the palmerpenguins package (no download)."""
    csv = resources.files("palmerpenguins") / "data" / "penguins.csv"
    raw = csv.read_bytes()
    frame = pd.read_csv(csv)
    source = {
        "package": f"palmerpenguins {pkg_metadata.version('palmerpenguins')}",
        "file": "palmerpenguins/data/penguins.csv",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "rows": len(frame),
    }
    return frame[list(FEATURES)], frame[TARGET].astype(str), source


def build_pipeline(seed: int, trees: int) -> Pipeline:
    preprocess = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), list(NUMERIC_FEATURES)),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                list(CATEGORICAL_FEATURES),
            ),
        ]
    )
    forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
    return Pipeline([("pre", preprocess), ("forest", forest)])


def feature_schema(frame: pd.DataFrame) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for name in FEATURES:
        column = frame[name]
        if name in NUMERIC_FEATURES:
            schema[name] = {
                "type": "number",
                "observed_min": float(column.min()),
                "observed_max": float(column.max()),
                "observed_median": float(column.median()),
                "missing": int(column.isna().sum()),
            }
        else:
            schema[name] = {
                "type": "category",
                "allowed": sorted(str(v) for v in column.dropna().unique()),
                "nullable": bool(column.isna().any()),
                "missing": int(column.isna().sum()),
            }
    return schema


def export_onnx(pipeline: Pipeline, width: int) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    forest = pipeline.named_steps["forest"]
    model = to_onnx(
        forest,
        initial_types=[("features", FloatTensorType([None, width]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return model.SerializeToString()


def parity(pipeline: Pipeline, onnx_bytes: bytes, frame: pd.DataFrame) -> dict[str, Any]:
    """Compare the served ONNX path with the pipeline on every row of the data set."""
    import onnxruntime as ort

    encoder = FeatureEncoding.from_pipeline(pipeline).encoder()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    rows = [
        {k: (None if pd.isna(v) else v) for k, v in record.items()}
        for record in frame.to_dict("records")
    ]
    served = session.run(["probabilities"], {"features": encoder.matrix(rows)})[0]
    truth = pipeline.predict_proba(frame)
    return {
        "rows": len(frame),
        "max_abs_diff": float(np.abs(served - truth).max()),
        "class_agreement": float((served.argmax(axis=1) == truth.argmax(axis=1)).mean()),
    }


def _atomic_write(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".tmp-") as tmp:
        tmp.write(data)
    _publish(Path(tmp.name), path)


def _publish(tmp: Path, path: Path) -> None:
    # Temporary files are private (0600); the model is no secret, and a service running
    # as another user (a container's non-root user) must be able to read it.
    tmp.chmod(0o644)
    tmp.replace(path)


def train(settings: TrainSettings) -> dict[str, Any]:
    features, target, source = load_data()
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        target,
        test_size=settings.test_size,
        stratify=target,
        random_state=settings.seed,
    )
    pipeline = build_pipeline(settings.seed, settings.trees).fit(x_train, y_train)
    predicted = pipeline.predict(x_test)
    classes = [str(c) for c in pipeline.classes_]
    metrics = {
        "test_accuracy": round(float(accuracy_score(y_test, predicted)), 6),
        "test_macro_f1": round(float(f1_score(y_test, predicted, average="macro")), 6),
        "confusion_matrix": {
            "labels": classes,
            "rows_true_columns_predicted": confusion_matrix(
                y_test, predicted, labels=classes
            ).tolist(),
        },
    }

    encoding = FeatureEncoding.from_pipeline(pipeline)
    onnx_bytes = export_onnx(pipeline, encoding.width)
    check = parity(pipeline, onnx_bytes, features)
    if check["max_abs_diff"] > settings.parity_tolerance or check["class_agreement"] < 1.0:
        raise SystemExit(
            f"ONNX forest disagrees with the pipeline (max |diff| {check['max_abs_diff']:.2e}, "
            f"class agreement {check['class_agreement']:.4f}); artefact not written"
        )

    settings.model_dir.mkdir(parents=True, exist_ok=True)
    joblib_path = settings.model_dir / JOBLIB_FILE
    onnx_path = settings.model_dir / ONNX_FILE
    with tempfile.NamedTemporaryFile(dir=settings.model_dir, delete=False, prefix=".tmp-") as tmp:
        joblib.dump(pipeline, tmp)
    _publish(Path(tmp.name), joblib_path)
    _atomic_write(onnx_path, onnx_bytes)

    joblib_sha = sha256_file(joblib_path)
    metadata = {
        "model_version": f"rf-{joblib_sha[:12]}",
        "name": "penguin-species",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": "classify a penguin's species from island, bill, flipper, body mass and sex",
        "classes": classes,
        "features": feature_schema(features),
        "metrics": metrics,
        "training_data": {
            **source,
            "train_rows": len(x_train),
            "test_rows": len(x_test),
            "split": "stratified by species",
        },
        "params": {
            "estimator": "RandomForestClassifier",
            "n_estimators": settings.trees,
            "random_state": settings.seed,
            "test_size": settings.test_size,
            "imputation": {"numeric": "median", "categorical": "most_frequent"},
        },
        "framework": {
            "python": platform.python_version(),
            "scikit-learn": pkg_metadata.version("scikit-learn"),
            "skl2onnx": pkg_metadata.version("skl2onnx"),
            "onnxruntime": pkg_metadata.version("onnxruntime"),
        },
        "artefacts": {
            "joblib": {"file": JOBLIB_FILE, "sha256": joblib_sha},
            "onnx": {
                "file": ONNX_FILE,
                "sha256": sha256_file(onnx_path),
                "parity": {**check, "tolerance": settings.parity_tolerance},
            },
        },
        "encoding": encoding.to_dict(),
    }
    metadata["card_sha256"] = card_digest(metadata)
    _atomic_write(
        settings.model_dir / METADATA_FILE,
        (json.dumps(metadata, indent=2, sort_keys=False) + "\n").encode(),
    )
    return metadata


def main() -> None:
    settings = TrainSettings()
    metadata = train(settings)
    metrics = metadata["metrics"]
    parity_check = metadata["artefacts"]["onnx"]["parity"]
    print(f"model {metadata['model_version']} written to {settings.model_dir}/")
    print(f"  test accuracy  {metrics['test_accuracy']:.4f}")
    print(f"  test macro-F1  {metrics['test_macro_f1']:.4f}")
    print(
        f"  ONNX parity    {parity_check['rows']} rows, max |diff| "
        f"{parity_check['max_abs_diff']:.1e} (tolerance {parity_check['tolerance']:.0e}), "
        f"classes agree {parity_check['class_agreement']:.0%}"
    )
    print(f"  training data  sha256 {metadata['training_data']['sha256'][:16]}…")
    print(f"  model card     sha256 {metadata['card_sha256']}")
    print(
        "to serve only this model, pin it (outside the model folder): "
        f"API_MODEL_SHA256={metadata['card_sha256']}"
    )


if __name__ == "__main__":
    sys.exit(main())
