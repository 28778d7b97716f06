"""Faults of the native stack, on real processes: every component killed, a replica that
keeps dying, a dead supervisor, a damaged state file, a launcher killed mid-scale."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from lab.runtimes.native.backoff import POLICY
from lab.runtimes.native.supervisor import SWEEP_SECONDS
from monitoring.pushgateway import IDENTITY_METRIC, TTL_METRIC, PusherIdentity, grouping_key
from tests.lab.runtimes.native.lab import NativeLab, running_lab
from tests.support import PYTHON, REPO, wait_until

pytestmark = pytest.mark.slow

HEALTH = {
    "traefik": "/ping",
    "prometheus": "/-/ready",
    "pushgateway": "/-/ready",
    "dashboards": "/-/ready",
}


@pytest.fixture(scope="module")
def one(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    """A stack with one replica that these tests damage; stopped after the module."""
    with running_lab(model_dir, tmp_path_factory.mktemp("faults"), 1, "1", "1g") as native:
        yield native


@pytest.fixture
def fresh(model_dir: Path, tmp_path: Path) -> Iterator[NativeLab]:
    """A stack of its own for a test that ends it; whatever is left is stopped."""
    native = NativeLab(run_dir=tmp_path / "run", model_dir=model_dir)
    native.cli("up", REPLICAS="1", CPUS="1", MEMORY="1g")
    try:
        yield native
    finally:
        native.cli("down", check=False)
        for _, pid in native.running():
            os.kill(pid, signal.SIGKILL)


def listening(ports: set[int]) -> set[int]:
    return ports & {
        c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
    }


def test_each_component_is_restarted_on_its_port_after_kill_9(one: NativeLab) -> None:
    for name, path in HEALTH.items():
        before = one.state()["components"][name]
        os.kill(before["proc"]["pid"], signal.SIGKILL)

        wait_until(
            lambda name=name: f"{name} restarted as pid" in one.events(),
            timeout=60,
            what=f"{name} restarted",
        )

        after = one.state()["components"][name]
        assert after["proc"]["pid"] != before["proc"]["pid"]
        assert after["port"] == before["port"]
        assert after["restarts"] == 1
        assert after["status"] == "running"
        assert httpx.get(f"http://127.0.0.1:{after['port']}{path}").status_code == 200
        assert after["proc"]["pid"] in dict((pid, n) for n, pid in one.running())

    metrics = one.supervisor_metrics()
    for name in HEALTH:
        assert metrics[("lab_component_restarts_total", name)] == 1
        assert metrics[("lab_component_up", name)] == 1
        assert metrics[("lab_component_crash_looping", name)] == 0
    # The restarted Prometheus scrapes the supervisor, and its data survived the kill.
    wait_until(
        lambda: any(
            s.value == 1
            for s in one.prometheus.query('lab_component_restarts_total{component="traefik"}')
        ),
        timeout=30,
        what="Prometheus to scrape the supervisor's restart count",
    )
    assert one.prometheus.query('up{job="supervisor"}')[0].value == 1


def test_the_pushgateway_keeps_nothing_outside_the_run_folder(one: NativeLab) -> None:
    port = one.state()["ports"]["pushgateway"]

    flags = httpx.get(f"http://127.0.0.1:{port}/api/v1/status").json()["data"]["flags"]

    assert flags["persistence.file"] == ""


def test_the_supervisor_removes_the_group_of_a_dead_load_generator(one: NativeLab) -> None:
    url = f"http://127.0.0.1:{one.state()['ports']['pushgateway']}"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        me = PusherIdentity.of_this_process()
        assert me is not None, "this test needs Linux's /proc"
        dead = PusherIdentity(
            me.boot_id, me.pid_namespace, sleeper.pid, psutil.Process(sleeper.pid).create_time()
        )
        registry = CollectorRegistry()
        Gauge("locust_users", "Users running now", registry=registry).set(3)
        # A TTL of an hour: only the supervisor's process check can find this run dead.
        Gauge(TTL_METRIC, "ttl", registry=registry).set(3600)
        labels = dead.labels()
        Gauge(IDENTITY_METRIC, "who", list(labels), registry=registry).labels(**labels).set(1)
        push_to_gateway(
            url, job="locust", registry=registry, grouping_key=grouping_key("killed", "h-master")
        )
        time.sleep(SWEEP_SECONDS + 1)
        assert "killed" in run_ids(url), "a live run's group was removed"
        sleeper.kill()
        sleeper.wait(10)

        wait_until(
            lambda: "killed" not in run_ids(url),
            timeout=3 * SWEEP_SECONDS,
            what="the supervisor to remove the dead run's group",
        )
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(10)
    assert "removed the Pushgateway group of a dead run: " in one.events()


def run_ids(pushgateway: str) -> set[str]:
    groups = httpx.get(f"{pushgateway}/api/v1/metrics", timeout=5).json()["data"]
    return {group["labels"].get("run_id", "") for group in groups}


def test_a_dead_supervisor_is_reported_and_restarted_by_status(one: NativeLab) -> None:
    old = one.state()["components"]["supervisor"]["proc"]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(old), timeout=10, what="the supervisor to die")

    result = one.cli("status")

    said = result.stdout + result.stderr
    assert "the supervisor was not running" in said
    new = one.state()["components"]["supervisor"]
    assert f"started it again as pid {new['proc']['pid']}" in " ".join(said.split())
    assert new["restarts"] == 1
    assert psutil.pid_exists(new["proc"]["pid"])
    again = one.cli("status")
    assert "the supervisor was not running" not in again.stdout + again.stderr
    supervisor_row = next(line for line in again.stdout.splitlines() if "supervisor " in line)
    assert " running " in supervisor_row and "found not running" in supervisor_row
    # The new supervisor does its job.
    replica = one.state()["replicas"][0]
    restarted = one.events().count(f"{replica['name']} restarted as pid")
    os.kill(replica["proc"]["pid"], signal.SIGKILL)
    wait_until(
        lambda: one.events().count(f"{replica['name']} restarted as pid") > restarted,
        timeout=60,
        what="the new supervisor to restart the replica",
    )


def test_a_replica_dying_right_after_ready_backs_off_and_is_reported(one: NativeLab) -> None:
    name = one.state()["replicas"][0]["name"]
    # Earlier tests may have left failures in a row: the count goes on from there.
    before = one.state()["replicas"][0]["failures"]
    start = len(one.events())
    killed: set[int] = set()

    def kill_when_ready() -> bool:
        replica = one.state()["replicas"][0]
        pid = replica["proc"]["pid"]
        if replica["status"] == "running" and pid not in killed:
            url = f"http://127.0.0.1:{replica['port']}/ready"
            if httpx.get(url, timeout=2).status_code == 200:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        return len(killed) == 4 and one.state()["replicas"][0]["failures"] == before + 4

    wait_until(kill_when_ready, timeout=120, what="four deaths right after /ready", interval=0.05)

    events = one.events()[start:]
    deaths = re.findall(
        rf"{name} pid \d+ [^;]*; restarting it (now|in \d+ s) "
        r"\(up [\d.]+ s, failure (\d+) in a row",
        events,
    )
    # Each death follows a short success, which never resets the count: the failures in a
    # row go up by one each time and every wait is the policy's, doubling.
    failures = [int(n) for _, n in deaths]
    waits = [0.0 if when == "now" else float(when.split()[1]) for when, _ in deaths]
    assert len(deaths) == 4
    assert failures == list(range(failures[0], failures[0] + 4))
    assert waits == [POLICY.delay(n) for n in failures]
    assert waits[1:] == sorted(set(waits[1:])) and waits[-1] >= 4
    assert "crash loop" in events
    status = one.cli("status").stdout
    assert "CRASH LOOP" in status and "crash loop: " + name in status
    assert one.supervisor_metrics()[("lab_component_crash_looping", name)] == 1

    # Waiting for its restart, it is still one of the deployment's replicas.
    result = one.cli("scale", "--replicas", "1")

    assert "starting" not in result.stderr
    assert [r["name"] for r in one.state()["replicas"]] == [name]
    wait_until(
        lambda: one.state()["replicas"][0]["status"] == "running",
        timeout=60,
        what="the replica back after its backoff",
    )


def test_a_corrupt_state_file_gives_one_message_and_down_still_stops_everything(
    fresh: NativeLab,
) -> None:
    ours = fresh.running()
    ports = {fresh.ports[k] for k in ("web", "traefik", "prometheus", "pushgateway", "dashboards")}
    ports |= {r["port"] for r in fresh.state()["replicas"]}
    (fresh.run_dir / "state.json").write_text("{")

    status = fresh.cli("status", check=False)
    up = fresh.cli("up", check=False)
    scale = fresh.cli("scale", "--replicas", "2", check=False)
    down = fresh.cli("down", check=False)

    for result in (status, up, scale):
        assert result.returncode == 1
        assert "state.json is unreadable" in result.stderr
        assert "make down" in result.stderr
    for result in (status, up, scale, down):
        assert "Traceback" not in result.stdout + result.stderr
    assert down.returncode == 0
    assert {n for n, _ in ours} == {
        "supervisor",
        "dashboards",
        "traefik",
        "prometheus",
        "pushgateway",
        "replica-1",
    }
    stopped = " ".join(down.stdout.split())
    for name, _ in ours:
        assert name in stopped
    assert fresh.running() == []
    assert not listening(ports)
    assert not (fresh.run_dir / "state.json").exists()


def test_a_launcher_killed_mid_scale_leaves_no_orphan(fresh: NativeLab) -> None:
    launcher = subprocess.Popen(
        [PYTHON, "-m", "lab", "scale", "--replicas", "3"],
        cwd=REPO,
        env=fresh.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # State is written at each spawn: both new replicas are recorded before either
        # is ready, and the launcher dies waiting for them.
        wait_until(lambda: len(fresh.state()["replicas"]) == 3, timeout=60, what="2 spawns")
    finally:
        launcher.kill()
        launcher.wait(10)
    replicas = fresh.state()["replicas"]
    ports = {r["port"] for r in replicas}

    # The supervisor finishes what the launcher started: the new replicas join when ready.
    wait_until(
        lambda: [r["status"] for r in fresh.state()["replicas"]] == ["running"] * 3,
        timeout=90,
        what="the supervisor to adopt the new replicas",
    )
    assert "joined for its launcher" in fresh.events()
    fresh.cli("down")

    assert fresh.running() == []
    assert not listening(ports)
