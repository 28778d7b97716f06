"""Workers for a Locust master on another host: their command line, and one message for
each setting a user can get wrong. No process is started."""

from __future__ import annotations

import pytest

from lab.core import LOCUST, LOCUST_CONF
from lab.loadworkers import WorkerSettings, main, worker_command


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCUST_MASTER_HOST", "LOCUST_MASTER_PORT", "WORKERS", "LOCUST_PUSHGATEWAY"):
        monkeypatch.delenv(name, raising=False)


def test_workers_join_the_master_named_by_locust_master_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCUST_MASTER_HOST", "10.0.0.5")
    monkeypatch.setenv("WORKERS", "4")

    command = worker_command(WorkerSettings())

    assert WorkerSettings().pushgateway_url() == "http://10.0.0.5:9091"
    assert command == [
        *(LOCUST, "--config", str(LOCUST_CONF), "--worker"),
        *("--master-host", "10.0.0.5", "--master-port", "5557", "--processes", "4"),
    ]


def test_one_worker_runs_without_a_forking_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUST_MASTER_HOST", "lab-master.internal")
    monkeypatch.setenv("LOCUST_MASTER_PORT", "15557")

    command = worker_command(WorkerSettings())

    assert "--processes" not in command
    assert command[-4:] == ["--master-host", "lab-master.internal", "--master-port", "15557"]


def test_a_missing_master_is_one_line_saying_what_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m lab.loadworkers: LOCUST_MASTER_HOST is not set")
    assert len(err.strip().splitlines()) == 1


def test_a_bad_worker_count_names_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCUST_MASTER_HOST", "10.0.0.5")
    monkeypatch.setenv("WORKERS", "0")

    with pytest.raises(SystemExit) as exit_info:
        main()

    assert exit_info.value.code == 2
    assert "invalid setting: WORKERS='0'" in capsys.readouterr().err


def test_a_chosen_pushgateway_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCUST_MASTER_HOST", "10.0.0.5")
    monkeypatch.setenv("LOCUST_PUSHGATEWAY", "http://metrics.internal:9091")

    assert WorkerSettings().pushgateway_url() == "http://metrics.internal:9091"
