"""The supervisor's loop, in this process, watching stand-in components (fake_component.py):
restart timeouts, backoff across short-lived successes, and surviving its own errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from lab.runtimes.native import supervisor as supervisor_module
from lab.runtimes.native.processes import find_run_processes, stop_all
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.state import Component, Proc, State, read_state, write_state
from lab.runtimes.native.supervisor import Supervisor
from tests.support import PYTHON, free_port

pytestmark = pytest.mark.slow

FAKE = str(Path(__file__).with_name("fake_component.py"))


def fake(name: str, *options: str) -> Component:
    port = free_port()
    return Component(
        name=name,
        port=port,
        proc=Proc(pid=0, create_time=0.0, log=""),
        command=[PYTHON, FAKE, str(port), *options],
        health="/ready",
    )


def empty_state(run_dir: Path) -> State:
    return State(
        run_dir=str(run_dir),
        ports={},
        label="r0-test",
        replicas_wanted=0,
        cpus=None,
        memory=None,
        cgroup_mode="off",
        cgroup_note="tests of the supervisor",
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run folder; every process spawned for it is stopped afterwards."""
    folder = tmp_path / "run"
    folder.mkdir()
    try:
        yield folder
    finally:
        stop_all([proc for _, proc in find_run_processes(folder)], timeout=5)


def start(run_dir: Path, *components: Component, **settings: float) -> Supervisor:
    """Spawn `components` as `up` would, record them, and give a supervisor for the run."""
    supervisor = Supervisor(NativeSettings(run_dir=run_dir, **settings))
    state = empty_state(run_dir)
    for component in components:
        state.components[component.name] = component
        supervisor.stack.spawn_component(component)
    write_state(run_dir, state)
    return supervisor


def tick_until(supervisor: Supervisor, check: Callable[[State], bool], timeout: float) -> State:
    """Run the supervisor's passes until `check` holds for the recorded state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert supervisor.tick()
        state = read_state(supervisor.settings.run_dir)
        assert state is not None
        if check(state):
            return state
        time.sleep(0.05)
    raise AssertionError(f"timed out; events:\n{events(supervisor)}")


def events(supervisor: Supervisor) -> str:
    path = supervisor.settings.run_dir / "events.log"
    return path.read_text() if path.exists() else ""


def test_a_restart_that_is_not_ready_in_time_is_stopped(run_dir: Path) -> None:
    supervisor = start(run_dir, fake("slow", "--ready-after", "600"), ready_timeout_seconds=1.0)
    first = read_state(run_dir).components["slow"].proc
    most_alive = 0

    def second_attempt_started(state: State) -> bool:
        nonlocal most_alive
        most_alive = max(most_alive, len(find_run_processes(run_dir)))
        return state.components["slow"].restarts == 1

    state = tick_until(supervisor, second_attempt_started, timeout=30)

    assert not first.alive()
    assert (
        not psutil.pid_exists(first.pid)
        or psutil.Process(first.pid).status() == psutil.STATUS_ZOMBIE
    )
    assert f"slow pid {first.pid} was not ready after 1 s; stopped it" in events(supervisor)
    component = state.components["slow"]
    assert component.status == "starting"
    assert component.proc.pid != first.pid
    assert component.failures == 1
    # The timed-out attempt was gone before the next began: never two copies at once.
    assert most_alive == 1


def test_backoff_grows_for_a_component_that_dies_right_after_it_is_ready(run_dir: Path) -> None:
    supervisor = start(run_dir, fake("flaky", "--exit-after", "0.5"))

    state = tick_until(supervisor, lambda s: s.components["flaky"].failures >= 4, timeout=60)

    delays = re.findall(r"flaky pid \d+ .*; restarting it (now|in \d+ s)", events(supervisor))
    assert delays == ["now", "in 1 s", "in 2 s", "in 4 s"]
    assert "exited with code 3" in events(supervisor)
    assert supervisor.policy.crash_looping(state.components["flaky"].failures)
    assert "failure 3 in a row, crash loop" in events(supervisor)


def test_one_failing_check_leaves_the_others_and_the_loop_running(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = start(run_dir, fake("first"), fake("second"))
    tick_until(
        supervisor,
        lambda s: all(c.status == "running" for c in s.components.values()),
        timeout=30,
    )
    original = supervisor_module.exit_description
    calls = []

    def broken_once(proc: Proc) -> str:
        calls.append(proc.pid)
        if len(calls) == 1:
            raise RuntimeError("a bug in one check")
        return original(proc)

    monkeypatch.setattr(supervisor_module, "exit_description", broken_once)
    state = read_state(run_dir)
    stop_all([c.proc for c in state.components.values()], timeout=5)

    assert supervisor.tick()
    after_one_pass = read_state(run_dir)

    assert "supervisor error: checking first failed, carrying on: RuntimeError" in events(
        supervisor
    )
    assert supervisor.errors == 1
    # The same pass went on to the second component.
    assert after_one_pass.components["second"].status in ("crashed", "starting")
    # And the next passes bring both back.
    tick_until(
        supervisor,
        lambda s: all(c.status == "running" and c.restarts == 1 for c in s.components.values()),
        timeout=30,
    )


def test_an_error_outside_any_check_is_logged_and_survived(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = start(run_dir, fake("only"))
    original = supervisor_module.read_state
    failures = iter([OSError(5, "Input/output error")])

    def flaky_read(folder: Path) -> State | None:
        error = next(failures, None)
        if error is not None:
            raise error
        return original(folder)

    monkeypatch.setattr(supervisor_module, "read_state", flaky_read)

    assert supervisor.tick()
    assert "unexpected error, carrying on: OSError" in events(supervisor)
    tick_until(supervisor, lambda s: s.components["only"].status == "running", timeout=30)


def test_the_supervisor_stops_once_the_stack_is_down(run_dir: Path) -> None:
    supervisor = start(run_dir)
    assert supervisor.tick()

    write_state(run_dir, None)

    assert not supervisor.tick()
