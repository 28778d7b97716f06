"""Inference engines: the compiled forest (ONNX Runtime) and the scikit-learn pipeline.

Both take rows as mappings of feature name to value and return class probabilities as an
(n, classes) float array in the order of `classes`. Each loads its model from the bytes
whose digest was just checked (api/artefact.py), and `sha256` names what it serves.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from api.artefact import METADATA_FILE, Artefact, ArtefactError
from api.encoding import FeatureEncoding
from api.schemas import FEATURES

log = logging.getLogger("api.engines")

Row = Mapping[str, Any]


class Engine(Protocol):
    name: str
    # Which model file of the artefact it serves (`onnx` or `joblib`).
    kind: str
    classes: tuple[str, ...]
    # SHA-256 of that file, checked when it was loaded.
    sha256: str

    def predict_proba(self, rows: Sequence[Row]) -> np.ndarray: ...


class OnnxEngine:
    """The forest compiled to ONNX, fed by the encoding learnt by the pipeline."""

    name = "onnx"
    kind = "onnx"

    def __init__(self, artefact: Artefact) -> None:
        import onnxruntime as ort

        path = artefact.path(self.kind)
        model = artefact.verified_bytes(self.kind)
        options = ort.SessionOptions()
        # One replica is one process on one share of CPU: inference stays on the calling
        # thread, and idle ORT threads must not spin on a core the replica does not own.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ArtefactError(f"{path} cannot be loaded by ONNX Runtime ({exc})") from None
        self._input = self._session.get_inputs()[0].name
        self._outputs = ["probabilities"]
        try:
            encoding = FeatureEncoding.from_dict(artefact.metadata["encoding"])
            self._encoder = encoding.encoder()
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtefactError(
                f"the feature encoding in {artefact.directory / METADATA_FILE} is malformed "
                f"({exc!r}); run `make train`"
            ) from None
        width = self._session.get_inputs()[0].shape[-1]
        if width != encoding.width:
            raise ArtefactError(
                f"the feature encoding in {artefact.directory / METADATA_FILE} makes "
                f"{encoding.width} columns, {path} takes {width}; run `make train`"
            )
        self.classes = artefact.classes
        self.sha256 = artefact.file_sha256(self.kind)

    def predict_proba(self, rows: Sequence[Row]) -> np.ndarray:
        matrix = self._encoder.matrix(rows)
        return self._session.run(self._outputs, {self._input: matrix})[0]


class SklearnEngine:
    """The fitted scikit-learn pipeline itself: the source of truth and the fallback."""

    name = "sklearn"
    kind = "joblib"

    def __init__(self, artefact: Artefact) -> None:
        import joblib
        import pandas as pd
        import sklearn

        self._pd = pd
        path = artefact.path(self.kind)
        model = artefact.verified_bytes(self.kind)
        trained_with = artefact.metadata.get("framework", {}).get("scikit-learn")
        if trained_with and trained_with != sklearn.__version__:
            log.warning(
                "model trained with scikit-learn %s, running %s: predictions may differ; "
                "run `make train` to retrain with this version",
                trained_with,
                sklearn.__version__,
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._pipeline = joblib.load(io.BytesIO(model))
        except Exception as exc:
            raise ArtefactError(f"{path} cannot be loaded ({exc}); run `make train`") from None
        fitted = tuple(str(c) for c in self._pipeline.classes_)
        if fitted != artefact.classes:
            raise ArtefactError(f"{path} predicts {fitted}, metadata says {artefact.classes}")
        self.classes = artefact.classes
        self.sha256 = artefact.file_sha256(self.kind)

    def predict_proba(self, rows: Sequence[Row]) -> np.ndarray:
        frame = self._pd.DataFrame(
            [[row.get(f) for f in FEATURES] for row in rows], columns=FEATURES
        )
        # The pipeline's imputers look for NaN; JSON null arrives as None.
        frame = frame.fillna(np.nan).infer_objects()
        frame["sex"] = frame["sex"].astype(object)
        return np.asarray(self._pipeline.predict_proba(frame))


def load_engine(artefact: Artefact, name: str) -> Engine:
    return OnnxEngine(artefact) if name == "onnx" else SklearnEngine(artefact)
