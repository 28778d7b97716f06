"""The Docker runtime against a fake `docker` on PATH (tests/docker/fake_docker.py).

The fake keeps the api containers in a file and records every call, so these tests check
the command lines, the environment compose gets, and the order of a rolling change:
never fewer serving replicas than the smaller of the old and new deployments, one
replica retired at a time, and nothing retired when a new replica fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cli import main
from lab.core import Deployment
from lab.errors import LabError
from lab.runtimes.docker.compose import (
    NOT_RUNNING,
    PASSWORD_STAND_IN,
    docker_socket_group,
)
from lab.runtimes.docker.runtime import DockerRuntime, deployment_env
from lab.runtimes.docker.settings import DockerSettings
from lab.runtimes.select import select_runtime
from tests.lab.runtimes.fakes import Clock, FakeProgram, FakePrometheus, install_program

FAKE = Path(__file__).with_name("fake_docker.py")
GIB = 1024**3
CLEARED = (
    "GRAFANA_ADMIN_PASSWORD",
    "REPLICAS",
    "CPUS",
    "MEMORY",
    "CONFIG",
    "WORKERS",
    "DOCKER_GID",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
)
ON_LINUX = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the socket's group is read on Linux only"
)


class FakeDocker(FakeProgram):
    """The fake's files, and helpers to read them."""

    def containers(self) -> list[dict[str, Any]]:
        return self.state()["containers"]

    def scraped(self) -> list[tuple[str, str]]:
        """Every running replica with its `config` label, as Prometheus scrapes them."""
        return [
            (c["Id"][:12], c["Config"]["Labels"]["lab.config"])
            for c in self.containers()
            if c["State"]["Status"] == "running"
        ]

    def seed(self, replicas: int, cpus: str = "1", memory: str = "1g") -> list[str]:
        """Start replicas as an earlier `make up` would have; the call log starts empty."""
        label = Deployment.parse(replicas, cpus, memory).label
        env = {**os.environ, "CPUS": cpus, "MEMORY": memory, "CONFIG": label}
        argv = [str(self.bin), "compose", "up", "--detach", "--scale", f"api={replicas}"]
        subprocess.run(argv, env=env, check=True)
        (self.root / "calls.jsonl").unlink()
        ids = [c["Id"] for c in self.containers()]
        # A first inspection turns them healthy, as they would be by now.
        subprocess.run([str(self.bin), "inspect", *ids], check=True, capture_output=True)
        (self.root / "calls.jsonl").unlink()
        return ids

    def changes(self) -> list[list[str]]:
        """The calls that change containers: compose up, stop, rm."""
        out = []
        for call in self.calls():
            argv = call["argv"]
            if argv[0] in {"stop", "rm"} or (argv[0] == "compose" and "up" in argv):
                out.append(argv)
        return out

    def stops(self) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["argv"][0] == "stop"]


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDocker]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "docker"
    install_program(FAKE, executable)
    root = tmp_path / "fake"
    root.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_DIR", str(root))
    # `python -m lab` (lab.cli.main) drives the Docker runtime, whatever this machine has.
    monkeypatch.setenv("RUNTIME", "docker")
    # Where compose would look for .env: this test's folder, not the repository.
    monkeypatch.setenv("LAB_COMPOSE_FILE", str(tmp_path / "docker-compose.yaml"))
    monkeypatch.setenv("LAB_POLL_INTERVAL_SECONDS", "0")
    # This machine's own Docker socket (if any) stays out of the tests.
    monkeypatch.setenv("LAB_DOCKER_SOCKET", str(tmp_path / "no-docker.sock"))
    for name in [*CLEARED, *(k for k in os.environ if k.startswith(("LOCUST_", "FAKE_DOCKER_")))]:
        if name != "FAKE_DOCKER_DIR":
            monkeypatch.delenv(name, raising=False)
    yield FakeDocker(root, executable)


@pytest.fixture
def password(docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFANA_ADMIN_PASSWORD", "a-test-password")


def make_runtime(docker: FakeDocker, unscraped_calls: int = 0) -> DockerRuntime:
    return DockerRuntime(
        DockerSettings(ready_timeout_seconds=20),
        prometheus=FakePrometheus(docker.scraped, unscraped_calls),
        say=lambda message: None,
        sleep=lambda seconds: None,
        clock=Clock(),
    )


def labels(docker: FakeDocker) -> list[str]:
    return [c["Config"]["Labels"]["lab.config"] for c in docker.containers()]


# --------------------------------------------------------------------------- up


@pytest.mark.usefixtures("password")
def test_up_builds_and_starts_the_deployment(docker: FakeDocker) -> None:
    make_runtime(docker).up(Deployment(3, 0.5, GIB // 2))

    up = [c for c in docker.calls() if c["argv"][0] == "compose" and "up" in c["argv"]]
    assert len(up) == 1
    assert up[0]["argv"] == [
        "compose",
        "--project-name",
        "capacity-lab",
        "--file",
        str(Path(os.environ["LAB_COMPOSE_FILE"])),
        "up",
        "--detach",
        "--build",
    ]
    assert {k: up[0]["env"][k] for k in ("REPLICAS", "CPUS", "MEMORY", "CONFIG")} == {
        "REPLICAS": "3",
        "CPUS": "0.5",
        "MEMORY": "512m",
        "CONFIG": "r3-c0.5-m512m",
    }
    assert labels(docker) == ["r3-c0.5-m512m"] * 3
    # The engine is asked first, so a missing plugin or daemon gets its own message.
    assert [c["argv"][:2] for c in docker.calls()[:2]] == [
        ["compose", "version"],
        ["info", "--format"],
    ]


def test_up_refuses_without_a_grafana_password(docker: FakeDocker) -> None:
    with pytest.raises(LabError, match=r"cp \.env\.example \.env"):
        make_runtime(docker).up(Deployment(2, 1.0, GIB))

    assert not docker.changes()


def test_up_reads_the_password_from_dot_env(docker: FakeDocker) -> None:
    env_file = Path(os.environ["LAB_COMPOSE_FILE"]).with_name(".env")
    env_file.write_text("# the lab\nGRAFANA_ADMIN_PASSWORD='from-the-file'\n")

    make_runtime(docker).up(Deployment(1, 1.0, GIB))

    assert labels(docker) == ["r1-c1.0-m1g"]


@pytest.mark.usefixtures("password")
def test_up_on_a_running_stack_changes_it_one_replica_at_a_time(docker: FakeDocker) -> None:
    old = docker.seed(2)

    make_runtime(docker).up(Deployment(2, 2.0, GIB))

    first = docker.changes()[0]
    assert first[-5:] == ["up", "--detach", "--no-recreate", "--scale", "api=2"]
    assert labels(docker) == ["r2-c2.0-m1g"] * 2
    assert not {c["Id"] for c in docker.containers()} & set(old)


@pytest.mark.usefixtures("password")
def test_up_reports_a_replica_that_exits_with_its_log(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_HEALTH", "exited")

    with pytest.raises(LabError, match=r"capacity-lab-api-1\) is exited; its last log lines"):
        make_runtime(docker).up(Deployment(2, 1.0, GIB))


@pytest.mark.usefixtures("password")
def test_up_says_when_the_engine_does_not_answer(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_NO_ENGINE", "1")

    with pytest.raises(LabError, match=r"the Docker engine does not answer.*RUNTIME=native"):
        make_runtime(docker).up(Deployment(2, 1.0, GIB))


def test_missing_docker_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    with pytest.raises(LabError, match="'docker' not found: install Docker Engine"):
        DockerRuntime(DockerSettings()).current()


@pytest.mark.usefixtures("password")
def test_a_failing_build_is_reported_after_its_own_output(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "up --detach --build")
    monkeypatch.setenv("FAKE_DOCKER_MESSAGE", "failed to solve: no space left on device")

    with pytest.raises(LabError, match=r"`docker compose up` failed with exit code 1"):
        make_runtime(docker).up(Deployment(2, 1.0, GIB))

    assert "no space left on device" in capfd.readouterr().err


@pytest.mark.usefixtures("password")
def test_a_failing_compose_is_reported_in_one_line(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.seed(2)
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "--no-recreate --scale api=3")
    monkeypatch.setenv(
        "FAKE_DOCKER_MESSAGE", " Container capacity-lab-api-3  Creating\nno space left on device\n"
    )

    with pytest.raises(LabError) as error:
        make_runtime(docker).scale(Deployment(3, 1.0, GIB))

    assert str(error.value) == "`docker compose up` failed: no space left on device"


# ------------------------------------------------------------------------ scale


@pytest.mark.usefixtures("password")
def test_new_limits_replace_replicas_one_at_a_time_adding_first(docker: FakeDocker) -> None:
    old = docker.seed(2)

    make_runtime(docker).scale(Deployment(2, 0.5, GIB))

    ops = [argv[0] if argv[0] != "compose" else argv[-1] for argv in docker.changes()]
    assert ops == ["api", "stop", "rm", "api", "stop", "rm"]
    assert [argv[-2] for argv in docker.changes() if argv[0] == "compose"] == ["api=3", "api=3"]
    assert [call["argv"][1] for call in docker.stops()] == old
    # Three replicas run when one is stopped: two keep serving throughout.
    assert [call["running"] for call in docker.stops()] == [3, 3]
    assert labels(docker) == ["r2-c0.5-m1g"] * 2
    assert {c["HostConfig"]["NanoCpus"] for c in docker.containers()} == {500_000_000}


@pytest.mark.usefixtures("password")
def test_scaling_up_relabels_every_replica_without_losing_capacity(docker: FakeDocker) -> None:
    docker.seed(2)

    make_runtime(docker).scale(Deployment(4, 1.0, GIB))

    adds = [argv for argv in docker.changes() if argv[0] == "compose"]
    assert adds[0][-2:] == ["api=4", "api"], "capacity grows first"
    assert all("--no-recreate" in argv and "--no-deps" in argv for argv in adds)
    assert all(call["running"] - 1 >= 2 for call in docker.stops())
    assert labels(docker) == ["r4-c1.0-m1g"] * 4


@pytest.mark.usefixtures("password")
def test_scaling_down_retires_replicas_one_at_a_time(docker: FakeDocker) -> None:
    docker.seed(4)

    make_runtime(docker).scale(Deployment(1, 1.0, GIB))

    changes = docker.changes()
    assert changes[0][-2:] == ["api=5", "api"], "the new replica comes before any retirement"
    retirements = changes[1:]
    assert [argv[0] for argv in retirements] == ["stop", "rm"] * 4
    assert all(
        stop["argv"][1] == rm[1] for stop, rm in zip(docker.stops(), retirements[1::2], strict=True)
    )
    assert all(call["running"] - 1 >= 1 for call in docker.stops())
    assert labels(docker) == ["r1-c1.0-m1g"]


@pytest.mark.usefixtures("password")
def test_scaling_to_the_running_deployment_changes_nothing(docker: FakeDocker) -> None:
    docker.seed(2)

    make_runtime(docker).scale(Deployment(2, 1.0, GIB))

    assert docker.changes() == []


@pytest.mark.usefixtures("password")
def test_a_replica_that_does_not_run_is_retired_and_replaced(docker: FakeDocker) -> None:
    dead, alive = docker.seed(2)
    state = docker.state()
    state["containers"][0]["State"]["Status"] = "exited"
    (docker.root / "state.json").write_text(json.dumps(state))

    make_runtime(docker).scale(Deployment(2, 1.0, GIB))

    assert docker.changes()[:2] == [["stop", dead], ["rm", dead]]
    assert docker.changes()[2][-2:] == ["api=2", "api"]
    assert alive in {c["Id"] for c in docker.containers()}
    assert labels(docker) == ["r2-c1.0-m1g"] * 2


@pytest.mark.usefixtures("password")
def test_an_unhealthy_new_replica_stops_the_change_before_any_retirement(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = docker.seed(2)
    monkeypatch.setenv("FAKE_DOCKER_HEALTH", "unhealthy")

    with pytest.raises(
        LabError, match=r"replica \w{12} \(capacity-lab-api-3\) is unhealthy.*0\.0\.0\.0:8001"
    ):
        make_runtime(docker).scale(Deployment(2, 0.5, GIB))

    assert docker.stops() == []
    assert set(old) <= {c["Id"] for c in docker.containers()}


@pytest.mark.usefixtures("password")
def test_a_slow_starting_replica_is_waited_for(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.seed(1)
    monkeypatch.setenv("FAKE_DOCKER_STARTING", "3")

    make_runtime(docker).scale(Deployment(2, 1.0, GIB))

    inspections = [c for c in docker.calls() if c["argv"][0] == "inspect"]
    assert len(inspections) >= 4
    assert labels(docker) == ["r2-c1.0-m1g"] * 2


@pytest.mark.usefixtures("password")
def test_a_replica_that_never_turns_healthy_times_out(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.seed(1)
    monkeypatch.setenv("FAKE_DOCKER_STARTING", "1000")

    with pytest.raises(LabError, match=r"not healthy after 20 s; its last log lines"):
        make_runtime(docker).scale(Deployment(2, 1.0, GIB))


@pytest.mark.usefixtures("password")
def test_scale_waits_until_prometheus_scrapes_every_replica(docker: FakeDocker) -> None:
    docker.seed(2)
    runtime = make_runtime(docker, unscraped_calls=3)

    runtime.scale(Deployment(3, 1.0, GIB))

    assert runtime.prometheus.calls == 4


@pytest.mark.usefixtures("password")
def test_scale_fails_when_prometheus_never_scrapes(docker: FakeDocker) -> None:
    docker.seed(2)

    with pytest.raises(LabError, match=r"Prometheus does not scrape.*config=r3-c1\.0-m1g"):
        make_runtime(docker, unscraped_calls=10_000).scale(Deployment(3, 1.0, GIB))


def test_scale_needs_a_running_stack(docker: FakeDocker) -> None:
    with pytest.raises(LabError, match="not running"):
        make_runtime(docker).scale(Deployment(2, 1.0, GIB))


# ------------------------------------------------------------ reading the stack


def test_current_and_label_come_from_the_containers(docker: FakeDocker) -> None:
    runtime = make_runtime(docker)
    assert runtime.current() is None
    assert runtime.label() == "unknown"

    docker.seed(2, cpus="0.5", memory="512m")

    assert runtime.current() == Deployment(2, 0.5, GIB // 2)
    assert runtime.label() == "r2-c0.5-m512m"


def test_unlimited_deployments_are_zero_for_docker() -> None:
    env = deployment_env(Deployment(1, None, None))

    assert env == {
        "REPLICAS": "1",
        "CPUS": "0",
        "MEMORY": "0",
        "CONFIG": "r1-cmax-mmax",
        "CONFIG_ROUTER": "r1-cmax-mmax",
    }


def test_endpoints_are_the_published_ports(docker: FakeDocker) -> None:
    endpoints = make_runtime(docker).endpoints()

    assert endpoints.api == "http://127.0.0.1:8000"
    assert endpoints.prometheus == "http://127.0.0.1:9090"
    assert endpoints.pushgateway == "http://127.0.0.1:9091"
    assert endpoints.scrape_interval_seconds == 5


# -------------------------------------------------------------------------- CLI


def test_cli_label_prints_the_running_config(
    docker: FakeDocker, capsys: pytest.CaptureFixture[str]
) -> None:
    docker.seed(3, cpus="2", memory="2g")

    main(["label"])

    assert capsys.readouterr().out == "r3-c2.0-m2g\n"


def test_cli_status_shows_each_replicas_cpu_and_memory(
    docker: FakeDocker, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = docker.seed(2, cpus="0.5")

    main(["status"])

    out = capsys.readouterr().out
    assert "traefik" in out
    rows = [line.split() for line in out.splitlines() if line[:12] in {i[:12] for i in ids}]
    assert len(rows) == 2
    # docker stats says 50 % of one core; the limit is half a core.
    assert rows[0][2:8] == ["r2-c0.5-m1g", "running", "healthy", "50.0", "100.0", "(of"]
    assert rows[0][-3:] == ["120MiB", "/", "1GiB"]


def test_cli_status_without_a_stack_says_how_to_start_it(
    docker: FakeDocker, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["status"])

    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"lab: {NOT_RUNNING}\n"


def test_cli_down_works_without_a_password_and_includes_locust(docker: FakeDocker) -> None:
    docker.seed(2)

    main(["down"])

    down = next(c for c in docker.calls() if "down" in c["argv"])
    assert down["argv"][-4:] == ["--profile", "load", "down", "--remove-orphans"]
    assert down["env"]["GRAFANA_ADMIN_PASSWORD"] == PASSWORD_STAND_IN
    assert docker.containers() == []


def test_cli_scale_keeps_the_limits_not_given(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.seed(2, cpus="0.5", memory="512m")
    monkeypatch.setattr("monitoring.prom.Prometheus", lambda url: FakePrometheus(docker.scraped))

    main(["scale", "--replicas", "3"])

    assert labels(docker) == ["r3-c0.5-m512m"] * 3


def test_cli_headless_load_runs_master_and_workers_and_returns_the_verdict(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker.seed(2)
    monkeypatch.setenv("FAKE_DOCKER_LOAD_EXIT", "3")

    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                *("load", "--workers", "4", "--users", "200"),
                *("--headless", "--run-time", "2m", "--shape", "steps"),
            ]
        )

    assert exit_info.value.code == 3
    up, rm = [c for c in docker.calls() if "locust-worker" in c["argv"]]
    assert up["argv"] == [
        "compose",
        "--project-name",
        "capacity-lab",
        "--file",
        os.environ["LAB_COMPOSE_FILE"],
        "--profile",
        "load",
        "up",
        "--build",
        "--no-deps",
        "--scale",
        "locust-worker=4",
        "--exit-code-from",
        "locust",
        "locust",
        "locust-worker",
    ]
    assert up["env"] == {
        "CONFIG": "r2-c1.0-m1g",
        "WORKERS": "4",
        "LOCUST_USERS": "200",
        "LOCUST_SPAWN_RATE": "10",
        "LOCUST_HEADLESS": "true",
        "LOCUST_RUN_TIME": "2m",
        "LOCUST_EXPECT_WORKERS": "4",
        "LOCUST_SHAPE": "steps",
        "LOCUST_ARRIVAL_RATE": "0",
    }
    assert rm["argv"][-5:] == ["rm", "--stop", "--force", "locust", "locust-worker"]


def test_cli_web_ui_load_leaves_headless_options_unset(docker: FakeDocker) -> None:
    docker.seed(1)

    main(["load", "--workers", "2"])

    up = next(c for c in docker.calls() if "locust-worker=2" in c["argv"])
    assert "--exit-code-from" not in up["argv"]
    assert not {"LOCUST_HEADLESS", "LOCUST_RUN_TIME"} & set(up["env"])


def test_cli_load_needs_a_running_stack(docker: FakeDocker) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["load"])

    assert exit_info.value.code == 1
    assert not [c for c in docker.calls() if "locust" in c["argv"]]


def test_the_runtime_selector_builds_this_runtime_for_docker(docker: FakeDocker) -> None:
    runtime = select_runtime("docker")

    assert runtime.name == "docker"
    assert runtime.title == "Docker stack"
    assert docker.calls() == [], "choosing the runtime runs nothing"


# ------------------------------------------------------- the socket proxy's group


def unix_socket(path: Path, mode: int = 0o660) -> int:
    """A Unix socket file at `path` owned by a group other than root's; its group id."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    path.chmod(mode)
    if path.stat().st_gid == 0:
        # Created by root: give it a group as the docker package does.
        os.chown(path, -1, 4242)
    return path.stat().st_gid


@ON_LINUX
@pytest.mark.usefixtures("password")
def test_up_runs_the_socket_proxy_in_the_sockets_group(
    docker: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "docker.sock"
    group = unix_socket(path)
    monkeypatch.setenv("LAB_DOCKER_SOCKET", str(path))
    monkeypatch.setenv("HOME", str(tmp_path))

    make_runtime(docker).up(Deployment(1, 1.0, GIB))

    up = next(c for c in docker.calls() if c["argv"][0] == "compose" and "up" in c["argv"])
    assert up["env"]["DOCKER_GID"] == str(group)


@pytest.mark.usefixtures("password")
def test_a_docker_gid_chosen_in_dot_env_is_left_to_compose(
    docker: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "docker.sock"
    unix_socket(path)
    monkeypatch.setenv("LAB_DOCKER_SOCKET", str(path))
    Path(os.environ["LAB_COMPOSE_FILE"]).with_name(".env").write_text("DOCKER_GID=999\n")

    make_runtime(docker).up(Deployment(1, 1.0, GIB))

    up = next(c for c in docker.calls() if c["argv"][0] == "compose" and "up" in c["argv"])
    assert "DOCKER_GID" not in up["env"], "compose reads .env itself"


@ON_LINUX
def test_socket_group_is_unknown_where_containers_reach_another_engine(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    group = unix_socket(path)
    home = {"HOME": str(tmp_path)}
    (tmp_path / "desktop").mkdir()
    (tmp_path / "desktop" / "config.json").write_text('{"currentContext": "desktop-linux"}')

    assert docker_socket_group(path, home) == str(group)
    assert docker_socket_group(path, {**home, "DOCKER_HOST": f"unix://{path}"}) == str(group)
    assert docker_socket_group(path, home, platform="darwin") is None
    assert docker_socket_group(path, {**home, "DOCKER_HOST": "tcp://10.0.0.5:2376"}) is None
    assert docker_socket_group(path, {**home, "DOCKER_CONTEXT": "rootless"}) is None
    assert docker_socket_group(path, {**home, "DOCKER_CONFIG": str(tmp_path / "desktop")}) is None
    assert docker_socket_group(tmp_path / "missing.sock", home) is None


@ON_LINUX
def test_socket_group_is_unknown_when_only_its_owner_may_use_it(tmp_path: Path) -> None:
    owner_only = tmp_path / "owner.sock"
    unix_socket(owner_only, mode=0o600)
    not_a_socket = tmp_path / "file.sock"
    not_a_socket.write_text("")
    not_a_socket.chmod(0o660)
    if not_a_socket.stat().st_gid == 0:
        os.chown(not_a_socket, -1, 4242)

    assert docker_socket_group(owner_only, {"HOME": str(tmp_path)}) is None
    assert docker_socket_group(not_a_socket, {"HOME": str(tmp_path)}) is None
