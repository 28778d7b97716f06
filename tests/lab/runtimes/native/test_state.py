"""state.json that is missing or damaged, and finding a run's processes without it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.runtimes.native.processes import find_run_processes, spawn, stop_all
from lab.runtimes.native.state import (
    STATE_FILE,
    Proc,
    Replica,
    State,
    StateError,
    read_state,
    write_state,
)


def state_with(*statuses: str) -> State:
    state = State(
        run_dir="/tmp/run",
        ports={"web": 8000},
        label="r2-c1.0-m1g",
        replicas_wanted=len(statuses),
        cpus=1.0,
        memory=2**30,
        cgroup_mode="off",
        cgroup_note="test",
    )
    for number, status in enumerate(statuses, start=1):
        replica = Replica(
            name=f"replica-{number}",
            port=8100 + number,
            cpus=1.0,
            memory=2**30,
            proc=Proc(0, 0.0, ""),
            status=status,
        )
        state.replicas.append(replica)
    return state


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "a JSON list instead of an object"),
        ('{"run_dir": "/x"}', "missing"),
        (
            '{"run_dir": "/x", "ports": {}, "label": "l", "replicas_wanted": 1, "cpus": null, '
            '"memory": null, "cgroup_mode": "off", "cgroup_note": "", "replicas": [{"name": 1}]}',
            "missing field",
        ),
    ],
)
def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / STATE_FILE).write_text(text)

    with pytest.raises(StateError) as raised:
        read_state(tmp_path)

    assert reason in raised.value.reason
    assert "make down" in str(raised.value)
    assert raised.value.path == tmp_path / STATE_FILE


def test_a_missing_state_file_means_not_running(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None


def test_state_round_trips_with_supervision_fields(tmp_path: Path) -> None:
    state = state_with("running", "crashed")
    state.replicas[1].failures = 4
    state.replicas[1].next_try = 123.5

    write_state(tmp_path, state)

    assert read_state(tmp_path) == state


def test_a_state_written_before_supervision_fields_still_reads(tmp_path: Path) -> None:
    old = json.loads(state_with("running").to_json())
    for record in old["replicas"]:
        for key in ("failures", "next_try"):
            del record[key]
    old["components"] = {
        "traefik": {
            "name": "traefik",
            "port": 8080,
            "proc": {"pid": 1, "create_time": 0.0, "log": ""},
        }
    }
    (tmp_path / STATE_FILE).write_text(json.dumps(old))

    state = read_state(tmp_path)

    assert state is not None
    assert state.replicas[0].failures == 0
    assert state.components["traefik"].command == []


def test_replicas_waiting_for_a_restart_count_toward_the_deployment() -> None:
    state = state_with("running", "crashed", "starting", "leaving", "dead")

    assert [r.name for r in state.present()] == ["replica-1", "replica-2", "replica-3"]
    assert [r.name for r in state.serving()] == ["replica-1"]


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[Path, Proc]]:
    run_dir = tmp_path / "run"
    proc = spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        run_dir / "logs" / "sleeper.log",
        run_dir=run_dir,
        name="replica-9",
    )
    try:
        yield run_dir, proc
    finally:
        stop_all([proc], timeout=5)


@pytest.mark.slow
def test_a_runs_processes_are_found_without_its_state_file(
    sleeper: tuple[Path, Proc], tmp_path: Path
) -> None:
    run_dir, proc = sleeper
    # Someone else's process, with the same command: not ours.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        found = find_run_processes(run_dir)
        elsewhere = find_run_processes(tmp_path / "another-run")
    finally:
        stranger.kill()
        stranger.wait()

    assert [(name, p.pid) for name, p in found] == [("replica-9", proc.pid)]
    assert found[0][1].alive()
    assert elsewhere == []
