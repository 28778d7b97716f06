"""Run a snippet of Python inside locust/, as Locust imports its modules, and read back
the JSON line it prints last: how the pure parts of the Locust code are tested without
starting Locust."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support import PYTHON, REPO


def run_probe(script: str, argument: str) -> Any:
    result = subprocess.run(
        [PYTHON, "-c", script, argument],
        cwd=REPO / "locust",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
