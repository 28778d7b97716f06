"""Dead load-generator runs leave the Pushgateway; live ones stay; a restart loses no totals.

Each test starts its own Pushgateway (in memory) on a free port; the Locust tests also
start one API replica as their target. No full stack: what is under test is the
Pushgateway group of each Locust process.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from monitoring.pushgateway import (
    IDENTITY_METRIC,
    TTL_METRIC,
    Cause,
    PusherIdentity,
    grouping_key,
    remove_dead_groups,
)
from tests.load.pushgateway_support import (
    GroupWatcher,
    LastPushes,
    Pushgateway,
    Replica,
    locust_command,
    read_summary,
    start_locust,
    wait_for_group,
)
from tests.support import REPO, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    pushgateway = Pushgateway(tmp_path / "pushgateway.log")
    pushgateway.start()
    try:
        yield pushgateway
    finally:
        pushgateway.kill()


@pytest.fixture(scope="module")
def replica(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    target = Replica(model_dir, tmp_path_factory.mktemp("replica") / "replica.log")
    try:
        yield target
    finally:
        target.stop()


def push_group(
    gateway: Pushgateway,
    run_id: str,
    ttl: float | None,
    identity: PusherIdentity | None,
    job: str = "locust",
) -> None:
    """A group shaped as a Locust process pushes it, for a pusher that we make up."""
    registry = CollectorRegistry()
    Gauge("locust_users", "Users running now", registry=registry).set(3)
    if ttl is not None:
        Gauge(TTL_METRIC, "ttl", registry=registry).set(ttl)
    if identity is not None:
        labels = identity.labels()
        Gauge(IDENTITY_METRIC, "who", list(labels), registry=registry).labels(**labels).set(1)
    push_to_gateway(
        gateway.url, job=job, registry=registry, grouping_key=grouping_key(run_id, "h-master")
    )


def here() -> PusherIdentity:
    identity = PusherIdentity.of_this_process()
    assert identity is not None, "these tests need Linux's /proc"
    return identity


# ------------------------------------------------------- judging groups, pushed by hand


def test_group_of_a_local_process_goes_as_soon_as_the_process_is_gone(
    gateway: Pushgateway,
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        me = here()
        identity = PusherIdentity(
            me.boot_id, me.pid_namespace, sleeper.pid, psutil.Process(sleeper.pid).create_time()
        )
        # A long TTL: only the process check can find this group dead.
        push_group(gateway, "sleeper", ttl=3600, identity=identity)

        while_alive = remove_dead_groups(gateway.url)
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait(10)
        after_kill = remove_dead_groups(gateway.url)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(10)

    assert while_alive == []
    assert [(r.labels["run_id"], r.cause) for r in after_kill] == [("sleeper", Cause.PROCESS_GONE)]
    assert "sleeper" not in gateway.run_ids()


def test_pid_reused_by_another_process_does_not_keep_a_group_alive(
    gateway: Pushgateway,
) -> None:
    me = here()
    # Our own PID, but a start time that is not ours: another process, long gone.
    impostor = PusherIdentity(me.boot_id, me.pid_namespace, me.pid, me.start_time - 1000)
    push_group(gateway, "reused-pid", ttl=3600, identity=impostor)

    removed = remove_dead_groups(gateway.url)

    assert [r.labels["run_id"] for r in removed] == ["reused-pid"]


def test_group_of_another_host_goes_only_when_its_ttl_has_passed(gateway: Pushgateway) -> None:
    elsewhere = PusherIdentity("another-boot", "pid:[4026531836]", 1, 100.0)
    push_group(gateway, "remote-fresh", ttl=3600, identity=elsewhere)
    push_group(gateway, "remote-silent", ttl=1, identity=elsewhere)
    pushed = time.time()

    early = remove_dead_groups(gateway.url)
    # The Pushgateway's clock has one-second resolution: wait past TTL + 1 s.
    time.sleep(max(0.0, pushed + 2.5 - time.time()))
    later = remove_dead_groups(gateway.url)

    assert early == []
    assert [(r.labels["run_id"], r.cause) for r in later] == [("remote-silent", Cause.SILENT)]
    assert later[0].silent_seconds is not None and later[0].silent_seconds > 1
    assert gateway.run_ids() == {"remote-fresh"}


def test_other_jobs_are_never_touched_and_old_groups_use_the_default_ttl(
    gateway: Pushgateway,
) -> None:
    push_group(gateway, "someone-else", ttl=None, identity=None, job="batch")
    push_group(gateway, "before-ttls", ttl=None, identity=None)
    time.sleep(2.5)

    removed = remove_dead_groups(gateway.url, default_ttl=1)

    assert [r.labels["run_id"] for r in removed] == ["before-ttls"]
    assert [g["labels"]["job"] for g in gateway.groups()] == ["batch"]


# ------------------------------------------------------------------ real Locust runs


def test_sigkilled_run_is_removed_by_the_next_run_while_a_live_run_stays(
    gateway: Pushgateway, replica: Replica, tmp_path: Path
) -> None:
    killed = start_locust(
        locust_command(replica.url, gateway.url, "killed", "90s"), tmp_path / "killed.log"
    )
    live = start_locust(
        locust_command(replica.url, gateway.url, "live", "90s"), tmp_path / "live.log"
    )
    try:
        wait_for_group(gateway, "killed")
        wait_for_group(gateway, "live")
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        left_behind = gateway.run_ids()

        following = subprocess.run(
            locust_command(replica.url, gateway.url, "next", "2s"),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        after_next_run = gateway.run_ids()
        live_still_running = live.poll() is None

        live.send_signal(signal.SIGTERM)
        live_exit = live.wait(60)
    finally:
        for process in (killed, live):
            if process.poll() is None:
                process.kill()
                process.wait(10)

    assert "killed" in left_behind
    assert following.returncode == 0, following.stderr[-3000:]
    assert "removed the Pushgateway group of a dead run" in following.stderr
    assert "run_id=killed (its process is gone" in following.stderr
    assert live_still_running
    assert "killed" not in after_next_run
    assert "live" in after_next_run
    assert "next" not in after_next_run
    # The live run, stopped normally afterwards, removes its own group.
    assert live_exit == 0, (tmp_path / "live.log").read_text()[-3000:]
    assert gateway.run_ids() == set()


def test_run_survives_a_pushgateway_restart_and_its_final_push_has_the_full_totals(
    gateway: Pushgateway, replica: Replica, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    log = tmp_path / "locust.log"
    command = locust_command(
        replica.url, gateway.url, "restart", "16s", "--summary-json", str(summary)
    )
    with GroupWatcher(gateway, "restart") as watcher:
        locust = start_locust(command, log)
        try:
            wait_for_group(gateway, "restart")
            wait_until(
                lambda: len(watcher.pushes) >= 2, timeout=20, what="two pushes before the crash"
            )
            before = watcher.pushes[-1]
            gateway.kill()
            # The outage: several push intervals without a Pushgateway.
            time.sleep(3)
            gateway.start()
            exit_code = locust.wait(120)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait(10)
        wait_until(
            lambda: "restart" not in gateway.run_ids(), timeout=20, what="the group's deletion"
        )
    output = log.read_text()
    after_restart = [p for p in watcher.pushes if p.pushed_at > before.pushed_at]
    final = watcher.pushes[-1]
    counted = read_summary(summary)["requests"]

    assert exit_code == 0, output[-3000:]
    assert "Traceback" not in output
    assert output.count("cannot push to the Pushgateway") == 1
    assert "pushes to the Pushgateway at" in output and "resumed after" in output
    # The first push to the empty Pushgateway already holds everything counted before.
    assert after_restart and after_restart[0].requests >= before.requests
    assert before.push_failures == 0
    assert final.push_failures > 0
    assert final.requests == counted


def test_final_state_waits_for_a_pushgateway_that_is_down_when_the_run_ends(
    gateway: Pushgateway, replica: Replica, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    log = tmp_path / "locust.log"
    command = locust_command(
        replica.url, gateway.url, "ends-in-outage", "6s", "--summary-json", str(summary)
    )
    with GroupWatcher(gateway, "ends-in-outage") as watcher:
        locust = start_locust(command, log)
        try:
            wait_for_group(gateway, "ends-in-outage")
            gateway.kill()
            # Down from before the end of the run until after it: only the final push's
            # retries can deliver the final state.
            wait_until(
                lambda: "--run-time limit reached" in log.read_text(),
                timeout=60,
                what="the run's end",
            )
            gateway.start()
            exit_code = locust.wait(120)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait(10)
        wait_until(
            lambda: "ends-in-outage" not in gateway.run_ids(),
            timeout=20,
            what="the group's deletion",
        )
    output = log.read_text()

    assert exit_code == 0, output[-3000:]
    assert "Traceback" not in output
    assert "gave up pushing the final state" not in output
    assert watcher.pushes[-1].requests == read_summary(summary)["requests"]
    assert watcher.pushes[-1].push_failures > 0


def test_open_model_with_two_workers_pushes_each_arrival_and_the_offered_rate_once(
    gateway: Pushgateway, replica: Replica, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    log = tmp_path / "locust.log"
    command = locust_command(
        replica.url, gateway.url, "two-workers", "5s", "--processes", "2",
        "--shape", "open", "--arrival-rate", "20", "--summary-json", str(summary),
    )  # fmt: skip
    with LastPushes(gateway, "two-workers") as pushes:
        exit_code = subprocess.run(
            command, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, timeout=120
        ).returncode
    output = log.read_text()
    arrivals = pushes.pushing("locust_arrivals_total")
    offered = pushes.pushing("locust_offered_rate")
    requests = read_summary(summary)["requests"]

    assert exit_code == 0, output[-3000:]
    assert len(pushes.groups) == 3, list(pushes.groups)
    # The workers draw the arrivals, each its users' share; the master, with no users,
    # draws none. Every request took one arrival, and few arrivals wait unserved at the
    # end (4 users on a fast replica): a sum over the groups counts each arrival once.
    assert len(arrivals) == 2 and not [i for i in arrivals if i.endswith("-master")]
    assert requests <= sum(arrivals.values()) <= 1.1 * requests + 4, (arrivals, requests)
    # The summary holds every request the workers sent, their last ones included: each
    # worker's final stats reach the master before it stops listening (lab_final_reports).
    assert sum(pushes.pushing("locust_requests_total").values()) == requests
    # The run's rate comes from the master alone, so sum() and max() both read it.
    assert list(offered) == [i for i in pushes.groups if i.endswith("-master")]
    assert list(offered.values()) == [20.0]
