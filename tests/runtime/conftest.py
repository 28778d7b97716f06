from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.lab import NativeLab


@pytest.fixture(scope="module")
def lab(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    """A running native stack with 2 replicas, stopped (by `down`) after the module."""
    native = NativeLab(run_dir=tmp_path_factory.mktemp("run"), model_dir=model_dir)
    native.cli("up", REPLICAS="2", CPUS="1", MEMORY="1g")
    try:
        yield native
    finally:
        native.cli("down", check=False)
