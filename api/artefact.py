"""The model artefact on disk: metadata, digests, and verification before anything loads.

joblib/pickle runs code while it loads, so a file is hashed and compared with the digest
recorded in metadata.json before it is opened. Every failure becomes one ArtefactError
whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.schemas import ISLANDS, SEXES, Species

METADATA_FILE = "metadata.json"
JOBLIB_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
FIX = "run `make train` to rebuild the model"


class ArtefactError(RuntimeError):
    """The model artefact is missing, corrupt, tampered with or does not fit the API."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Artefact:
    directory: Path
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    @property
    def sha256(self) -> str:
        return str(self.metadata["artefacts"]["joblib"]["sha256"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    def verified_path(self, kind: str) -> Path:
        """The path of artefact `kind` (`joblib` or `onnx`) after its digest matched."""
        entry = self.metadata["artefacts"].get(kind)
        if entry is None:
            raise ArtefactError(f"{self.directory / METADATA_FILE} lists no {kind} model; {FIX}")
        path = self.directory / entry["file"]
        if not path.is_file():
            raise ArtefactError(f"{path} is missing; {FIX}")
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ArtefactError(
                f"{path} does not match the SHA-256 recorded in {METADATA_FILE} "
                f"(expected {entry['sha256'][:16]}…, found {actual[:16]}…): the file is "
                f"truncated, corrupt or was changed; {FIX}"
            )
        return path


def open_artefact(directory: Path) -> Artefact:
    """Read and check metadata.json; the model files are verified when they are loaded."""
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise ArtefactError(f"no model in {directory}/ ({METADATA_FILE} is missing); {FIX}")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        required = ("model_version", "classes", "features", "artefacts", "encoding")
        missing = [key for key in required if key not in metadata]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{meta_path} is not readable JSON ({exc}); {FIX}") from None
    if missing:
        raise ArtefactError(f"{meta_path} lacks {', '.join(missing)}; {FIX}")
    artefact = Artefact(directory=directory, metadata=metadata)
    _check_schema_agreement(artefact)
    return artefact


def _check_schema_agreement(artefact: Artefact) -> None:
    """Refuse a model whose categories or classes differ from what the API accepts."""
    features = artefact.metadata["features"]
    expected = {
        "island": list(ISLANDS),
        "sex": list(SEXES),
    }
    for name, allowed in expected.items():
        trained = sorted(features.get(name, {}).get("allowed", []))
        if trained != sorted(allowed):
            raise ArtefactError(
                f"the model was trained with {name} in {trained}, the API accepts {allowed}; {FIX}"
            )
    if sorted(artefact.classes) != sorted(Species.__args__):
        raise ArtefactError(
            f"the model predicts {list(artefact.classes)}, the API answers "
            f"{list(Species.__args__)}; {FIX}"
        )
