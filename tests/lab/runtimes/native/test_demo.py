"""`make demo`, the README's first command, runs to the end."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.lab.runtimes.native.lab import NativeLab
from tests.support import PENGUIN, REPO

pytestmark = pytest.mark.slow


def test_make_demo_runs_to_the_end(model_dir: Path, tmp_path: Path) -> None:
    lab = NativeLab(run_dir=tmp_path / "run", model_dir=model_dir)
    env = {**lab.env, "MAKEFLAGS": ""}
    try:
        demo = subprocess.run(
            ["make", "demo", f"MODEL_DIR={model_dir}", "RUNTIME=native"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "sent 600 predictions through Traefik: 600 answered 200" in demo.stdout
        assert "replica-1:" in demo.stdout
        assert "replica-2:" in demo.stdout
        assert "Where to look" in demo.stdout
        assert f"http://127.0.0.1:{lab.ports['traefik']}/dashboard/" in demo.stdout
        assert f"http://127.0.0.1:{lab.ports['dashboards']}/d/lab-capacity" in demo.stdout
        assert "make down" in demo.stdout
        assert_every_printed_url_answers(demo.stdout)
    finally:
        down = subprocess.run(
            ["make", "down", "RUNTIME=native"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lab.cli("down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped" in down.stdout


def assert_every_printed_url_answers(text: str) -> None:
    """Open each address the demo printed, as a person would: GET, or POST where the
    demo says so, following redirects; each must answer 200 on the installed versions."""
    links = re.findall(r"(POST )?(https?://\S+)", text)
    assert len(links) >= 7, text
    with httpx.Client(timeout=10, follow_redirects=True) as client:
        for method, url in links:
            response = client.post(url, json=PENGUIN) if method else client.get(url)
            assert response.status_code == 200, f"{method}{url} answered {response.status_code}"
