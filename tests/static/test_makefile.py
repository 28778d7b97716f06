"""The Makefile only spells calls of `python -m lab`: checked with `make -n` (nothing runs)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

# What a user's shell does not have: the lab's variables, and those an enclosing `make
# test` passes down (with them, make would report its errors as a sub-make's).
NOT_A_USERS = {"REPLICAS", "CPUS", "MEMORY", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"}


def dry_run(*args: str) -> list[str]:
    """The commands `make` would run, for a user with none of the lab's variables set."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_USERS}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "-m lab" in line]


def test_scale_with_only_cpus_does_not_pass_the_default_replica_count() -> None:
    (command,) = dry_run("scale", "CPUS=0.5")

    assert command.split("-m lab ", 1)[1].split() == ["scale", "--cpus", "'0.5'"]


def test_scale_passes_what_is_given_and_only_that() -> None:
    (command,) = dry_run("scale", "REPLICAS=4", "MEMORY=512m")

    assert command.split("-m lab ", 1)[1].split() == [
        *("scale", "--replicas", "'4'", "--memory", "'512m'"),
    ]


@pytest.mark.parametrize(
    ("target", "verb"),
    [
        ("up", "up"),
        ("status", "status"),
        ("logs", "logs"),
        ("down", "down"),
        ("demo", "demo"),
        ("load", "load"),
        ("load-headless", "load"),
        ("experiment", "experiment"),
        ("stop", "down"),
        ("stats", "status"),
    ],
)
def test_each_stack_target_calls_the_one_entry_once(target: str, verb: str) -> None:
    commands = dry_run(target)

    assert len(commands) == 1, commands
    assert commands[0].split("-m lab ", 1)[1].split()[0] == verb


def test_load_headless_passes_every_load_variable() -> None:
    (command,) = dry_run("load-headless", "USERS=7", "SHAPE=open", "ARRIVAL_RATE=5")

    assert "--users '7'" in command
    assert "--shape 'open' --arrival-rate '5'" in command
    assert command.endswith("--headless --run-time '60s'")


def test_workshop_verbs_scale_load_and_clean_all() -> None:
    scale, load = dry_run("scale-load", "REPLICAS=2")
    assert scale.split("-m lab ", 1)[1].split() == ["scale", "--replicas", "'2'"]
    assert " load " in load and "--headless" in load

    clean_all = subprocess.run(
        ["make", "-n", "clean-all"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"-m lab down\n(.*\n)*rm -rf", clean_all)

    listed = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True).stdout
    assert re.search(r"^\s+scale-load\s", listed, re.M)
    assert re.search(r"^\s+clean-all\s", listed, re.M)


def test_no_target_is_split_per_runtime() -> None:
    text = (REPO / "Makefile").read_text()

    assert not re.search(r"^_\w+-(native|docker):", text, re.M)
    assert "RESOLVED_RUNTIME" not in text


def make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make` for real, native runtime, on a run folder where no stack runs."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_A_USERS}
    env |= {"RUNTIME": "native", "LAB_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lab_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without make's own report of the failed target."""
    return [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]


def test_make_scale_with_a_bad_replica_count_is_one_lab_line(tmp_path: Path) -> None:
    result = make(tmp_path, "scale", "REPLICAS=abc")

    assert result.returncode != 0
    assert lab_lines(result) == [
        "lab: invalid setting: REPLICAS='abc': Input should be a valid integer, unable to "
        "parse string as an integer"
    ]


def test_make_load_headless_with_the_stack_down_says_it_is_down(tmp_path: Path) -> None:
    result = make(tmp_path, "load-headless", "DURATION=2s")

    assert result.returncode != 0
    assert lab_lines(result) == ["lab: the native stack is not running; start it with `make up`"]
    assert "capacity lab summary" not in result.stdout + result.stderr
