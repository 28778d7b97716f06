from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.train import TrainSettings, train
from tests.lab.runtimes.native.lab import NativeLab, running_lab


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once for the whole session, in a folder of its own."""
    directory = tmp_path_factory.mktemp("model")
    train(TrainSettings(model_dir=directory))
    return directory


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the model that a test may damage."""
    copy = tmp_path / "model"
    copy.mkdir()
    for item in model_dir.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    yield copy


@pytest.fixture(scope="module")
def lab(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    """A running native stack with 2 replicas (1 CPU, 1 GB each), stopped after the module."""
    with running_lab(model_dir, tmp_path_factory.mktemp("run"), 2, "1", "1g") as native:
        yield native
