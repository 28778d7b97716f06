"""The service refuses a missing, truncated or tampered artefact with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.artefact import ArtefactError, card_digest, open_artefact
from api.engines import load_engine
from tests.support import serve_until_exit


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("engine", "file"), [("sklearn", "model.joblib"), ("onnx", "model.onnx")])
def test_tampered_artefact_stops_startup_with_one_clear_line(
    model_copy: Path, engine: str, file: str
) -> None:
    flip_one_byte(model_copy / file)

    result = serve_until_exit(model_copy, API_ENGINE=engine)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert file in lines[0]
    assert "SHA-256" in lines[0]
    assert "make train" in lines[0]
    assert "Traceback" not in result.stderr


def test_truncated_artefact_is_refused(model_copy: Path) -> None:
    path = model_copy / "model.joblib"
    path.write_bytes(path.read_bytes()[:1000])

    with pytest.raises(ArtefactError, match="truncated, corrupt or was changed"):
        load_engine(open_artefact(model_copy), "sklearn")


def test_missing_model_stops_startup(tmp_path: Path) -> None:
    result = serve_until_exit(tmp_path / "nowhere")

    assert result.returncode == 2
    assert "metadata.json is missing" in result.stderr
    assert "make train" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_onnx_file_is_named(model_copy: Path) -> None:
    (model_copy / "model.onnx").unlink()

    with pytest.raises(ArtefactError, match=r"model\.onnx is missing"):
        load_engine(open_artefact(model_copy), "onnx")


def test_unreadable_metadata_is_refused(model_copy: Path) -> None:
    (model_copy / "metadata.json").write_text("{not json")

    with pytest.raises(ArtefactError, match="not readable JSON"):
        open_artefact(model_copy)


def test_model_with_other_categories_is_refused(model_copy: Path) -> None:
    # As a model trained on other data would be: a consistent card, with its own digest.
    meta_path = model_copy / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    metadata["features"]["island"]["allowed"].append("Anvers")
    metadata["card_sha256"] = card_digest(metadata)
    meta_path.write_text(json.dumps(metadata))

    with pytest.raises(ArtefactError, match="island"):
        open_artefact(model_copy)


def test_bad_setting_is_one_clear_line(model_dir: Path) -> None:
    result = serve_until_exit(model_dir, API_ENGINE="tensorflow")

    assert result.returncode == 2
    assert "invalid setting" in result.stderr
    assert "engine" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_one_clear_line(model_dir: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve_until_exit(model_dir, port=port)

    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert "Traceback" not in result.stderr
