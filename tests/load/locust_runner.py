"""Locust run headless against a native lab, its stats pushed to the lab's Pushgateway."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.lab.runtimes.native.lab import NativeLab
from tests.support import PYTHON, REPO

LOCUST = str(Path(PYTHON).parent / "locust")


def run_locust(
    lab: NativeLab, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    command = [
        LOCUST,
        "--config", "locust/locust.conf",
        "--host", lab.api,
        "--headless",
        "--pushgateway", f"http://127.0.0.1:{lab.ports['pushgateway']}",
        "--push-interval", "1",
        "--scrape-interval", "1",
        "--config-label", lab.state()["label"],
        *args,
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO, env={**lab.env, **env}, capture_output=True, text=True, timeout=timeout
    )
