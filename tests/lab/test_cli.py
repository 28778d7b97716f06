"""`python -m lab VERB`: every verb selects the runtime once, then goes through the contract."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab import cli
from lab.core import Deployment
from lab.runtimes.contract import LoadOptions, Runtime
from tests.lab.fake_runtime import FakeRuntime
from tests.support import PYTHON, REPO


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    fake = FakeRuntime(running=Deployment.parse(11, "1", "1g"))

    def select(wanted: str, quiet: bool = False) -> Runtime:
        fake.chosen.append(wanted)
        return fake

    monkeypatch.setattr(cli, "select_runtime", select)
    monkeypatch.setenv("RUNTIME", "native")
    return fake


def run(*argv: str) -> None:
    cli.main(list(argv))


def test_up_starts_the_configured_deployment_then_shows_status(
    runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.running = None

    run("up")

    assert runtime.verbs() == ["ensure_available", "up", "status"]
    assert runtime.calls[1][1] == Deployment.parse(3, "0.5", "512m")
    assert "fake stack up: r3-c0.5-m512m, API on http://api" in capsys.readouterr().out


def test_every_verb_selects_the_runtime_once_from_runtime(runtime: FakeRuntime) -> None:
    for verb in ("status", "logs", "down", "demo", "label"):
        run(verb)

    assert runtime.chosen == ["native"] * 5
    assert runtime.verbs() == [
        *("ensure_available", "status", "ensure_available", "logs"),
        *("ensure_available", "down", "ensure_available", "demo", "ensure_available"),
    ]


def test_scale_with_only_cpus_keeps_the_replica_count(runtime: FakeRuntime) -> None:
    run("scale", "--cpus", "0.5")

    assert runtime.calls[1] == ("scale", Deployment.parse(11, "0.5", "1g"))


def test_scale_with_only_replicas_keeps_the_limits(runtime: FakeRuntime) -> None:
    runtime.running = Deployment.parse(2, "0.5", "512m")

    run("scale", "--replicas", "4")

    assert runtime.calls[1] == ("scale", Deployment.parse(4, "0.5", "512m"))


def test_scale_with_a_bad_replica_count_says_so_in_one_line(
    runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("scale", "--replicas", "abc")

    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "lab: invalid setting: REPLICAS='abc' is not a whole number\n"
    assert "scale" not in runtime.verbs()


def test_load_passes_its_options_and_returns_the_verdict(runtime: FakeRuntime) -> None:
    runtime.load_exit = 3

    with pytest.raises(SystemExit) as exit_info:
        run("load", "--users", "7", "--shape", "open", "--arrival-rate", "5", "--headless")

    assert exit_info.value.code == 3
    assert runtime.calls[1] == (
        "load",
        LoadOptions(users=7, shape="open", arrival_rate=5.0, headless=True),
    )


def test_load_with_the_stack_down_says_it_is_down(
    runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.running = None

    with pytest.raises(SystemExit) as exit_info:
        run("load", "--headless")

    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "lab: the fake stack is not running; start it with `make up`\n"
    )


def test_experiment_and_capacity_run_on_the_selected_runtime(
    runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lab.experiments.commands as commands

    runs: list[tuple[Runtime, Path | None, str | None]] = []
    monkeypatch.setattr(
        commands,
        "run_experiment",
        lambda rt, file=None, capacity_of=None: runs.append((rt, file, capacity_of)),
    )

    run("experiment", "--file", "plan.yml")
    run("capacity", "--config", "r2-c1.0-m1g")

    assert runs == [(runtime, Path("plan.yml"), None), (runtime, None, "r2-c1.0-m1g")]


def test_report_needs_no_runtime(
    runtime: FakeRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run("report", "--run", str(tmp_path))

    assert runtime.chosen == []
    assert "holds no results.json" in capsys.readouterr().err


def test_a_bad_verb_is_one_lab_line_not_a_usage_dump(
    runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("frobnicate")

    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.startswith("lab: argument command: invalid choice: 'frobnicate'")
    assert err.count("\n") == 1
    assert "usage:" not in err


def test_native_load_headless_with_the_stack_down_says_so(tmp_path: Path) -> None:
    """The real entry, real native runtime, no stack: no Locust run against nothing."""
    result = subprocess.run(
        [PYTHON, "-m", "lab", "load", "--headless", "--run-time", "1s"],
        cwd=REPO,
        env={
            **os.environ,
            "RUNTIME": "native",
            "LAB_RUN_DIR": str(tmp_path / "run"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr == "lab: the native stack is not running; start it with `make up`\n"
