"""NativeRuntime's answers when no stack runs: each says what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import LabError
from lab.runtimes.contract import LoadOptions
from lab.runtimes.native.runtime import NativeRuntime
from lab.runtimes.native.settings import NativeSettings


@pytest.fixture
def runtime(tmp_path: Path) -> NativeRuntime:
    # Given explicitly, so that this shell's REPLICAS or LAB_* variables do not matter.
    settings = NativeSettings(
        run_dir=tmp_path / "run", replicas=2, cpus="1", memory="1g", web_port=8000
    )
    return NativeRuntime(settings, quiet=True)


def test_without_a_stack_nothing_is_running(runtime: NativeRuntime) -> None:
    assert runtime.current() is None
    assert runtime.label() == "unknown"
    assert runtime.replica_urls() == []
    assert runtime.limits_description() == "cgroups if writable (decided at start)"
    with pytest.raises(LabError, match=r"not running; start it with `make up`"):
        runtime.require_running()


def test_load_logs_and_placement_refuse_a_stack_that_is_down(runtime: NativeRuntime) -> None:
    with pytest.raises(LabError, match="the native stack is not running"):
        runtime.load(LoadOptions(headless=True))
    with pytest.raises(LabError, match=r"no logs in .*; start the stack with `make up`"):
        runtime.logs()
    with pytest.raises(LabError, match=r"load_generator\.cpus needs cgroups"):
        runtime.place_load_generator(0.5)
    with pytest.raises(LabError, match="WORKERS=0 must be 1 or more"):
        runtime.load(LoadOptions(workers=0))


def test_the_runtime_the_stack_and_its_run_files_share_one_settings_object(
    runtime: NativeRuntime,
) -> None:
    assert runtime.stack.settings is runtime.settings
    assert runtime.stack.files.settings is runtime.settings
    assert runtime.configured().label == "r2-c1.0-m1g"
    assert runtime.endpoints().api == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("given", "expected"), [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")], ids=["lab-host", "given"]
)
def test_locust_master_listens_for_workers_where_the_stack_listens(
    runtime: NativeRuntime, monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def attached(command: list[str], env: dict[str, str], cwd: Path) -> int:
        calls.append((command, env))
        return 0

    if given is None:
        monkeypatch.delenv("LOCUST_MASTER_BIND_HOST", raising=False)
    else:
        monkeypatch.setenv("LOCUST_MASTER_BIND_HOST", given)
    monkeypatch.setattr(runtime, "require_running", lambda: None)
    monkeypatch.setattr("lab.runtimes.native.runtime.run_attached", attached)

    assert runtime.load(LoadOptions(workers=3, headless=True)) == 0

    ((command, env),) = calls
    assert command[command.index("--processes") + 1] == "3"
    assert env["LOCUST_MASTER_BIND_HOST"] == expected
