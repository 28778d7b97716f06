"""LAB_HOST beyond loopback: refused unless LAB_ALLOW_REMOTE=true, then loudly warned."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from lab.errors import LabError
from lab.runtimes.native.settings import NativeSettings, is_loopback, remote_exposure
from lab.runtimes.native.stack import NativeStack
from tests.lab.runtimes.native.lab import NativeLab


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_expose_nothing(host: str) -> None:
    assert is_loopback(host)
    assert remote_exposure(NativeSettings(host=host)) == []


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "lab.example.org"])
def test_other_hosts_expose_the_unauthenticated_apis(host: str) -> None:
    exposed = " ".join(remote_exposure(NativeSettings(host=host, prometheus_port=19090)))

    assert not is_loopback(host)
    assert "Traefik's dashboard and API" in exposed
    assert "lifecycle API" in exposed and ":19090" in exposed
    assert "Pushgateway" in exposed


def test_up_refuses_a_remote_host_without_the_opt_in(model_dir: Path, tmp_path: Path) -> None:
    lab = NativeLab(run_dir=tmp_path / "run", model_dir=model_dir)

    result = lab.cli("up", check=False, LAB_HOST="0.0.0.0")

    assert result.returncode == 1
    assert "LAB_HOST=0.0.0.0 is not a loopback address" in result.stderr
    assert "LAB_ALLOW_REMOTE=true" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (lab.run_dir / "state.json").exists()


def test_the_opt_in_warns_what_is_exposed(tmp_path: Path) -> None:
    settings = NativeSettings(run_dir=tmp_path, host="0.0.0.0", allow_remote=True)
    console = Console(record=True, width=400)
    stack = NativeStack(settings, console)

    stack.check_host()

    said = console.export_text()
    assert "warning: LAB_HOST=0.0.0.0 with LAB_ALLOW_REMOTE=true exposes" in said
    assert "lifecycle API" in said


def test_without_the_opt_in_the_check_raises(tmp_path: Path) -> None:
    stack = NativeStack(NativeSettings(run_dir=tmp_path, host="0.0.0.0"), Console(quiet=True))

    with pytest.raises(LabError, match="LAB_ALLOW_REMOTE=true"):
        stack.check_host()
