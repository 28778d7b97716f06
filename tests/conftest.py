from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.train import TrainSettings, train


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
