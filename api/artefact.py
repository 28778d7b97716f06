"""The model artefact on disk: metadata, digests, and verification before anything loads.

joblib/pickle runs code while it loads, so nothing is opened before it is trusted:
- the model card (metadata.json) records `card_sha256`, the SHA-256 of its
  prediction-relevant part (CARD_FIELDS: version, classes, feature schema, the ONNX
  feature encoding, and each model file's name and SHA-256). A card edited by hand or
  corrupted no longer matches it;
- each model file is read once, hashed and compared with the digest the card records,
  and loaded from those very bytes (no window to swap the file between check and load);
- file names stay inside the model folder;
- optionally, the card digest is pinned from outside the folder (API_MODEL_SHA256 or
  API_MODEL_DIGEST_FILE): whoever can replace the model's files and its card cannot
  also change the pin, so one pinned value vouches for everything that affects
  predictions. `make train` prints the value to pin.
Every failure becomes one ArtefactError whose message says what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.schemas import ISLANDS, SEXES, Species

METADATA_FILE = "metadata.json"
JOBLIB_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
FIX = "run `make train` to rebuild the model"
# The parts of the card that change what the service answers; the rest (metrics,
# training data, parameters, versions, dates) describes the model and may be reworded.
CARD_FIELDS = ("model_version", "classes", "features", "encoding", "artefacts")
# Of each artefact entry, what locates and identifies the file (not its parity report).
ARTEFACT_FIELDS = ("file", "sha256")
REQUIRED = (*CARD_FIELDS, "card_sha256")
# The JSON type each required part must have, so that no later step trips over it.
_TYPES = {"classes": list, "features": dict, "encoding": dict, "artefacts": dict}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ArtefactError(RuntimeError):
    """The model artefact is missing, corrupt, tampered with or does not fit the API."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_digest(metadata: dict[str, Any]) -> str:
    """SHA-256 of the card's prediction-relevant part, in a canonical JSON encoding (sorted
    keys, no spaces, ASCII), so that reformatting metadata.json does not change it."""
    relevant = {key: metadata[key] for key in CARD_FIELDS if key != "artefacts"}
    relevant["artefacts"] = {
        kind: {key: entry[key] for key in ARTEFACT_FIELDS if key in entry}
        for kind, entry in metadata["artefacts"].items()
    }
    canonical = json.dumps(relevant, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def normalise_digest(value: str) -> str:
    """A SHA-256 as 64 lowercase hex digits; accepts upper case and a `sha256:` prefix.
    Returns '' for anything else (callers say what they expected)."""
    digest = value.strip().lower().removeprefix("sha256:")
    return digest if _SHA256.fullmatch(digest) else ""


def read_digest_file(path: Path, model_dir: Path) -> str:
    """The digest pinned in `path`: its first word (so `sha256sum`-style lines work)."""
    if path.resolve().is_relative_to(model_dir.resolve()):
        raise ArtefactError(
            f"API_MODEL_DIGEST_FILE ({path}) lies inside the model folder {model_dir}/: "
            "whoever can replace the model could replace the pin too; keep it elsewhere"
        )
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtefactError(f"API_MODEL_DIGEST_FILE ({path}) cannot be read ({exc})") from None
    digest = normalise_digest(words[0]) if words else ""
    if not digest:
        raise ArtefactError(
            f"API_MODEL_DIGEST_FILE ({path}) does not start with a SHA-256 (64 hex digits); "
            "write there the card digest that `make train` printed"
        )
    return digest


@dataclass(frozen=True)
class Artefact:
    directory: Path
    metadata: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    @property
    def card_sha256(self) -> str:
        """The digest of the prediction-relevant card, checked when it was opened."""
        return str(self.metadata["card_sha256"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["classes"])

    def file_sha256(self, kind: str) -> str:
        """The SHA-256 the card records for artefact `kind` (`joblib` or `onnx`)."""
        return str(self._entry(kind)["sha256"])

    def path(self, kind: str) -> Path:
        """Where artefact `kind` lives; confined to the model folder when it was opened."""
        return self.directory / self._entry(kind)["file"]

    def _entry(self, kind: str) -> dict[str, Any]:
        entry = self.metadata["artefacts"].get(kind)
        if entry is None:
            raise ArtefactError(f"{self.directory / METADATA_FILE} lists no {kind} model; {FIX}")
        return entry

    def verified_bytes(self, kind: str) -> bytes:
        """The content of artefact `kind`, read once and matched with its recorded digest.

        Loaders take these bytes, not the path: the file may not change between the check
        and the load."""
        path = self.path(kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtefactError(f"{path} is missing; {FIX}") from None
        except OSError as exc:
            raise ArtefactError(f"{path} cannot be read ({exc.strerror}); {FIX}") from None
        expected = self.file_sha256(kind)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ArtefactError(
                f"{path} does not match the SHA-256 recorded in {METADATA_FILE} "
                f"(expected {expected[:16]}…, found {actual[:16]}…): the file is "
                f"truncated, corrupt or was changed; {FIX}"
            )
        return data


def open_artefact(
    directory: Path, pinned_sha256: str = "", digest_file: Path | None = None
) -> Artefact:
    """Read metadata.json and check it: complete, consistent with its card digest, equal to
    the pinned digest when one is given, confined to `directory`, and agreeing with the
    API's schema. The model files are verified when they are loaded."""
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise ArtefactError(f"no model in {directory}/ ({METADATA_FILE} is missing); {FIX}")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{meta_path} is not readable JSON ({exc}); {FIX}") from None
    if not isinstance(metadata, dict):
        raise ArtefactError(f"{meta_path} is not a model card (not a JSON object); {FIX}")
    missing = [key for key in REQUIRED if key not in metadata]
    if missing:
        older = " (written by an older `make train`)" if missing == ["card_sha256"] else ""
        raise ArtefactError(f"{meta_path} lacks {', '.join(missing)}{older}; {FIX}")
    wrong = [key for key, kind in _TYPES.items() if not isinstance(metadata[key], kind)]
    if wrong:
        raise ArtefactError(f"{meta_path}: {', '.join(wrong)} malformed; {FIX}")
    _check_entries(meta_path, metadata)
    try:
        actual = card_digest(metadata)
    except ValueError as exc:
        raise ArtefactError(f"{meta_path} holds a value JSON cannot carry ({exc}); {FIX}") from None
    if actual != metadata["card_sha256"]:
        raise ArtefactError(
            f"{meta_path} does not match its card_sha256: its prediction-relevant part "
            f"({', '.join(CARD_FIELDS)}) was edited or is corrupt (recorded "
            f"{str(metadata['card_sha256'])[:16]}…, found {actual[:16]}…); {FIX}"
        )
    _check_pins(directory, actual, pinned_sha256, digest_file)
    artefact = Artefact(directory=directory, metadata=metadata)
    _check_schema_agreement(artefact)
    return artefact


def _check_entries(meta_path: Path, metadata: dict[str, Any]) -> None:
    """Every listed model file has a name inside the folder and a well-formed digest."""
    artefacts = metadata["artefacts"]
    if not all(isinstance(entry, dict) for entry in artefacts.values()):
        raise ArtefactError(f"{meta_path}: `artefacts` is not a table of model files; {FIX}")
    folder = meta_path.parent.resolve()
    for kind, entry in artefacts.items():
        where = f"{meta_path}: artefacts.{kind}"
        for key in ARTEFACT_FIELDS:
            if not isinstance(entry.get(key), str):
                raise ArtefactError(f"{where} lacks `{key}`; {FIX}")
        if not _SHA256.fullmatch(entry["sha256"]):
            raise ArtefactError(f"{where}.sha256 is not a SHA-256 (64 hex digits); {FIX}")
        name = entry["file"]
        target = (meta_path.parent / name).resolve()
        if Path(name).is_absolute() or not target.is_relative_to(folder) or target == folder:
            raise ArtefactError(
                f"{where}.file ({name!r}) points outside the model folder {meta_path.parent}/; "
                f"model files must live in it; {FIX}"
            )


def _check_pins(directory: Path, actual: str, pinned_sha256: str, digest_file: Path | None) -> None:
    """The card digest must equal every pin given (API_MODEL_SHA256, API_MODEL_DIGEST_FILE)."""
    pins = []
    if pinned_sha256:
        pins.append(("API_MODEL_SHA256", pinned_sha256))
    if digest_file is not None:
        pins.append(
            (f"API_MODEL_DIGEST_FILE ({digest_file})", read_digest_file(digest_file, directory))
        )
    for source, expected in pins:
        if actual != expected:
            raise ArtefactError(
                f"the model in {directory}/ is not the pinned one: its card digest is "
                f"{actual}, {source} expects {expected}. If the model was retrained on "
                "purpose, pin the digest `make train` printed; otherwise restore the model"
            )


def _check_schema_agreement(artefact: Artefact) -> None:
    """Refuse a model whose categories or classes differ from what the API accepts."""
    features = artefact.metadata["features"]
    expected = {
        "island": list(ISLANDS),
        "sex": list(SEXES),
    }
    for name, allowed in expected.items():
        schema = features.get(name)
        listed = schema.get("allowed") if isinstance(schema, dict) else None
        trained = sorted(map(str, listed)) if isinstance(listed, list) else []
        if trained != sorted(allowed):
            raise ArtefactError(
                f"the model was trained with {name} in {trained}, the API accepts {allowed}; {FIX}"
            )
    if sorted(map(str, artefact.classes)) != sorted(Species.__args__):
        raise ArtefactError(
            f"the model predicts {list(artefact.classes)}, the API answers "
            f"{list(Species.__args__)}; {FIX}"
        )
