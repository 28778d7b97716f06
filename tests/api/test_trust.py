"""The model's trust anchor: a card digest covering everything that affects predictions,
an optional pin from outside the model folder, files confined to the folder, and /health
naming exactly what is served."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.artefact import ArtefactError, card_digest, open_artefact
from api.engines import load_engine
from api.main import load_model
from api.settings import ApiSettings
from tests.support import (
    PYTHON,
    REPO,
    api_env,
    free_port,
    registry_of,
    serve_until_exit,
    stop_process,
    wait_until,
)

Change = Callable[[dict[str, Any]], None]


def card(model: Path) -> dict[str, Any]:
    return json.loads((model / "metadata.json").read_text())


def rewrite(model: Path, change: Change, *, reseal: bool) -> str:
    """Apply `change` to the card; with `reseal`, record its new digest as `make train`
    would (what someone who replaces the whole model does). Returns the card digest."""
    metadata = card(model)
    change(metadata)
    if reseal:
        metadata["card_sha256"] = card_digest(metadata)
    (model / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return str(metadata.get("card_sha256", ""))


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def set_median(metadata: dict[str, Any]) -> None:
    metadata["encoding"]["medians"][0] += 10.0


def swap_classes(metadata: dict[str, Any]) -> None:
    metadata["classes"] = metadata["classes"][::-1]


def widen_mass(metadata: dict[str, Any]) -> None:
    metadata["features"]["body_mass_g"]["observed_max"] = 1e6


def relabel(metadata: dict[str, Any]) -> None:
    metadata["model_version"] = "rf-000000000000"


def other_file_digest(metadata: dict[str, Any]) -> None:
    metadata["artefacts"]["onnx"]["sha256"] = "0" * 64


@pytest.mark.parametrize(
    "change",
    [set_median, swap_classes, widen_mass, relabel, other_file_digest],
    ids=["onnx-encoding", "classes", "feature-schema", "model-version", "file-digest"],
)
def test_card_edited_without_its_digest_is_refused(model_copy: Path, change: Change) -> None:
    rewrite(model_copy, change, reseal=False)

    with pytest.raises(ArtefactError, match="does not match its card_sha256") as refused:
        open_artefact(model_copy)
    assert "make train" in str(refused.value)


def test_descriptive_parts_of_the_card_may_change(model_copy: Path) -> None:
    before = card(model_copy)["card_sha256"]

    def reword(metadata: dict[str, Any]) -> None:
        metadata["metrics"]["test_accuracy"] = 0.5
        metadata["created_at"] = "2000-01-01T00:00:00+00:00"
        metadata["artefacts"]["onnx"]["parity"]["rows"] = 1
        metadata["task"] = "reworded"

    rewrite(model_copy, reword, reseal=False)

    assert open_artefact(model_copy).card_sha256 == before


def test_card_digest_does_not_depend_on_formatting(model_copy: Path) -> None:
    metadata = card(model_copy)
    (model_copy / "metadata.json").write_text(json.dumps(dict(reversed(metadata.items()))))

    assert open_artefact(model_copy).card_sha256 == card_digest(metadata)


def test_a_resealed_encoding_that_does_not_fit_the_forest_is_refused(model_copy: Path) -> None:
    def drop_category(metadata: dict[str, Any]) -> None:
        metadata["encoding"]["categories"][0] = metadata["encoding"]["categories"][0][:-1]

    rewrite(model_copy, drop_category, reseal=True)

    with pytest.raises(ArtefactError, match="makes 8 columns"):
        load_engine(open_artefact(model_copy), "onnx")


@pytest.mark.parametrize("engine", ["onnx", "sklearn"])
@pytest.mark.parametrize(
    "name", ["../model.onnx", "/tmp/model.onnx", "sub/../../model.onnx", "."], ids=str
)
def test_file_outside_the_model_folder_is_refused(model_copy: Path, engine: str, name: str) -> None:
    # A valid model file waits outside the folder: only the check stands in the way.
    (model_copy.parent / "model.onnx").write_bytes((model_copy / "model.onnx").read_bytes())
    kind = "onnx" if engine == "onnx" else "joblib"

    def escape(metadata: dict[str, Any]) -> None:
        metadata["artefacts"][kind]["file"] = name

    rewrite(model_copy, escape, reseal=True)

    with pytest.raises(ArtefactError, match="points outside the model folder"):
        load_engine(open_artefact(model_copy), engine)


def test_symlink_out_of_the_model_folder_is_refused(model_copy: Path) -> None:
    outside = model_copy.parent / "elsewhere.onnx"
    outside.write_bytes((model_copy / "model.onnx").read_bytes())
    (model_copy / "model.onnx").unlink()
    (model_copy / "model.onnx").symlink_to(outside)

    with pytest.raises(ArtefactError, match="points outside the model folder"):
        open_artefact(model_copy)


@pytest.mark.parametrize("key", ["sha256", "file"])
@pytest.mark.parametrize("reseal", [True, False], ids=["resealed", "as-edited"])
def test_missing_key_in_an_artefact_entry_is_one_clear_line(
    model_copy: Path, key: str, reseal: bool
) -> None:
    def drop(metadata: dict[str, Any]) -> None:
        del metadata["artefacts"]["joblib"][key]

    rewrite(model_copy, drop, reseal=reseal)

    line = one_clear_line(serve_until_exit(model_copy, API_ENGINE="sklearn"))
    assert f"artefacts.joblib lacks `{key}`" in line
    assert "make train" in line


def test_card_from_an_older_training_names_the_fix(model_copy: Path) -> None:
    rewrite(model_copy, lambda metadata: metadata.pop("card_sha256"), reseal=False)

    line = one_clear_line(serve_until_exit(model_copy))
    assert "lacks card_sha256 (written by an older `make train`)" in line


def replace_whole_model(model: Path) -> str:
    """What an attacker with write access to the folder can do: a different, internally
    consistent model (here its encoding shifted), card digest recomputed."""
    return rewrite(model, set_median, reseal=True)


def test_replaced_model_serves_when_nothing_is_pinned(model_copy: Path) -> None:
    replaced = replace_whole_model(model_copy)

    assert open_artefact(model_copy).card_sha256 == replaced


def test_replaced_model_is_refused_by_the_pinned_digest(model_copy: Path) -> None:
    pinned = card(model_copy)["card_sha256"]
    replaced = replace_whole_model(model_copy)

    line = one_clear_line(serve_until_exit(model_copy, API_MODEL_SHA256=pinned))
    assert "not the pinned one" in line
    assert f"card digest is {replaced}" in line
    assert f"API_MODEL_SHA256 expects {pinned}" in line


def test_replaced_model_is_refused_by_the_digest_file(model_copy: Path, tmp_path: Path) -> None:
    pin = tmp_path / "pins" / "penguin.sha256"
    pin.parent.mkdir()
    pin.write_text(f"{card(model_copy)['card_sha256']}  metadata.json\n")
    replace_whole_model(model_copy)

    line = one_clear_line(serve_until_exit(model_copy, API_MODEL_DIGEST_FILE=str(pin)))
    assert f"API_MODEL_DIGEST_FILE ({pin}) expects" in line


def test_digest_file_inside_the_model_folder_is_refused(model_copy: Path) -> None:
    pin = model_copy / "pin.sha256"
    pin.write_text(card(model_copy)["card_sha256"])

    with pytest.raises(ArtefactError, match="lies inside the model folder"):
        open_artefact(model_copy, digest_file=pin)


@pytest.mark.parametrize("content", ["", "not-a-digest\n"], ids=["empty", "garbage"])
def test_digest_file_without_a_digest_is_refused(
    model_copy: Path, tmp_path: Path, content: str
) -> None:
    pin = tmp_path / "pin.sha256"
    pin.write_text(content)

    with pytest.raises(ArtefactError, match="does not start with a SHA-256"):
        open_artefact(model_copy, digest_file=pin)


def test_missing_digest_file_is_refused(model_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtefactError, match="cannot be read"):
        open_artefact(model_copy, digest_file=tmp_path / "absent.sha256")


def test_malformed_pin_is_an_invalid_setting(model_dir: Path) -> None:
    line = one_clear_line(serve_until_exit(model_dir, API_MODEL_SHA256="abc123"))

    assert "invalid setting" in line
    assert "model_sha256" in line


def test_right_pins_load_the_model(model_copy: Path, tmp_path: Path) -> None:
    digest = card(model_copy)["card_sha256"]
    pin = tmp_path / "pin.sha256"
    pin.write_text(f"SHA256:{digest.upper()}\n")

    loaded = load_model(
        ApiSettings(model_dir=model_copy, model_sha256=digest.upper(), model_digest_file=pin)
    )

    assert loaded.artefact.card_sha256 == digest


@pytest.mark.slow
def test_replica_with_the_right_pin_serves(model_dir: Path) -> None:
    port = free_port()
    digest = card(model_dir)["card_sha256"]
    process = subprocess.Popen(
        [PYTHON, "-m", "api"],
        cwd=REPO,
        env=api_env(model_dir, port, API_MODEL_SHA256=digest),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200,
            timeout=60,
            what="the pinned replica to become ready",
        )
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["card_sha256"] == digest
    finally:
        stop_process(process)


@pytest.mark.parametrize(("engine", "file"), [("onnx", "model.onnx"), ("sklearn", "model.joblib")])
def test_health_names_the_digest_of_the_file_served(
    make_client: Callable[..., TestClient], model_dir: Path, engine: str, file: str
) -> None:
    client = make_client(engine=engine)
    on_disk = hashlib.sha256((model_dir / file).read_bytes()).hexdigest()

    health = client.get("/health")

    assert health.status_code == 200
    body = health.json()
    assert body["engine"] == engine
    assert body["model_file"] == file
    assert body["model_sha256"] == on_disk
    assert body["card_sha256"] == card(model_dir)["card_sha256"]
    info = registry_of(client).get_sample_value(
        "model_info",
        {
            "version": body["model_version"],
            "sha256": on_disk,
            "card_sha256": body["card_sha256"],
            "engine": engine,
        },
    )
    assert info == 1.0
