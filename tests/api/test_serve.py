"""How a replica's process is prepared before it serves."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api.serve import tune_garbage_collector
from api.settings import ApiSettings


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_collections_made_rarer() -> None:
    _, middle, old = gc.get_threshold()
    settings = ApiSettings(gc_young_threshold=12_345)

    tune_garbage_collector(settings.gc_young_threshold)

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (12_345, middle, old)
    assert ApiSettings().gc_young_threshold == 10_000
