"""The compose file as Compose renders it with the test environment, for every module here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.docker.compose_file import load_compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
