"""`run_attached`: the exit code of a program run in the foreground, Ctrl-C waited
through, and one clear message when the program is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.attached import run_attached
from lab.errors import LabError
from tests.support import PYTHON


def test_the_exit_code_environment_and_folder_are_the_programs(tmp_path: Path) -> None:
    script = (
        "import os, pathlib, sys; "
        "sys.exit(0 if os.environ['MARK'] == 'here' and pathlib.Path.cwd().name == 'work' "
        "else 7)"
    )
    (tmp_path / "work").mkdir()

    assert run_attached([PYTHON, "-c", script], "-", {"MARK": "here"}, tmp_path / "work") == 0
    assert run_attached([PYTHON, "-c", "raise SystemExit(3)"], "-") == 3


def test_a_missing_program_is_the_given_message(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"^nothing there: install it$"):
        run_attached([str(tmp_path / "absent")], "nothing there: install it")


def test_ctrl_c_waits_for_the_program_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted:
        """A child that is still running the first time Ctrl-C arrives."""

        waits = 0

        def __init__(self, *_: object, **__: object) -> None:
            pass

        def wait(self) -> int:
            type(self).waits += 1
            if type(self).waits == 1:
                raise KeyboardInterrupt
            return 130

    monkeypatch.setattr(subprocess, "Popen", Interrupted)

    assert run_attached(["locust"], "-") == 130
    assert Interrupted.waits == 2
