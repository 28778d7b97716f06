"""Chaos under load: kill -9 of each component of the native stack in turn, while Locust
sends predictions through Traefik, and what each fault costs.

For each fault the test records requests sent and failed (Locust's own counts, the
client's view), predictions answered 200 by the replicas (their counters in Prometheus,
the server's view), the time until the component answers again, whether Prometheus still
holds what it had stored before the fault, and whether the run's Locust series reached
Prometheus complete. The figures go to .run/test-artifacts/chaos.{json,md}; README's
"Reliability" section quotes them. Targets: only in-flight requests lost on a replica
kill, Traefik back by itself, no stored Prometheus data lost, Locust runs complete and
pushed after a Pushgateway restart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pytest

from tests.lab.runtimes.native.lab import NativeLab, running_lab
from tests.load.locust_runner import LOCUST
from tests.support import PENGUIN, REPO, wait_until

pytestmark = pytest.mark.slow

ARTEFACTS = REPO / ".run" / "test-artifacts"
USERS = 12
RUN_SECONDS = 12
KILL_AFTER_SECONDS = 4
RECOVERY_TIMEOUT = 60.0
# Predictions (single and batch) the replicas answered 200, and those Locust saw succeed.
SERVED = 'http_requests_total{job="api", handler=~"/predict.*", status="200"}'
CLIENT_OK = 'locust_requests_total{{run_id="{run}", name=~"POST /predict.*", result="success"}}'


@dataclass
class FaultCost:
    component: str
    requests: int
    failures: int
    client_predictions_ok: int
    served_200: int
    recovery_seconds: float
    prometheus_data_kept: bool
    locust_series_complete: bool

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


COSTS: list[FaultCost] = []


@pytest.fixture(scope="module")
def chaos_lab(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    try:
        with running_lab(model_dir, tmp_path_factory.mktemp("chaos"), 2, "0.5", "512m") as native:
            yield native
    finally:
        write_artefacts(COSTS)


def pid_of(lab: NativeLab, component: str) -> int:
    state = lab.state()
    if component == "replica":
        return state["replicas"][-1]["proc"]["pid"]
    return state["components"][component]["proc"]["pid"]


def start_locust(lab: NativeLab, run_id: str, summary: Path) -> subprocess.Popen[str]:
    command = [
        LOCUST,
        "--config", "locust/locust.conf",
        "--host", lab.api,
        "--headless",
        "-u", str(USERS), "-r", str(USERS),
        "-t", f"{RUN_SECONDS}s",
        "--think-time", "0.1",
        "--run-id", run_id,
        "--pushgateway", f"http://127.0.0.1:{lab.ports['pushgateway']}",
        "--push-interval", "1",
        "--scrape-interval", "1",
        "--config-label", lab.state()["label"],
        "--summary-json", str(summary),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=lab.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_up_samples(lab: NativeLab, before: float) -> float:
    """Samples of every target's `up` Prometheus holds for the 20 s before `before`."""
    value = lab.prometheus.value("sum(count_over_time(up[20s]))", time=before, default=0.0)
    return value or 0.0


def served_between(lab: NativeLab, start: float, end: float) -> int:
    """Predictions the replicas answered 200 in [start, end], from their counters
    (`increase` follows a restarted replica's counter from 0 again)."""
    window = max(int(end - start), 1)
    value = lab.prometheus.value(f"sum(increase({SERVED}[{window}s]))", time=end, default=0.0)
    return round(value or 0.0)


def client_predictions_ok(lab: NativeLab, run_id: str) -> int:
    query = f"sum(max_over_time({CLIENT_OK.format(run=run_id)}[5m]))"
    return round(lab.prometheus.value(query, default=0.0) or 0.0)


def locust_total(lab: NativeLab, run_id: str) -> int:
    query = f'sum(max_over_time(locust_requests_total{{run_id="{run_id}"}}[5m]))'
    return round(lab.prometheus.value(query, default=0.0) or 0.0)


def wait_recovered(check: Callable[[], bool]) -> float:
    started = time.monotonic()
    wait_until(check, timeout=RECOVERY_TIMEOUT, what="recovery", interval=0.05)
    return time.monotonic() - started


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def recovery_check(lab: NativeLab, component: str, old_pid: int) -> Callable[[], bool]:
    ports = lab.ports
    if component == "traefik":
        return lambda: (
            answers(f"http://127.0.0.1:{ports['traefik']}/ping") and answers(f"{lab.api}/ready")
        )
    if component == "prometheus":
        return lambda: answers(f"http://127.0.0.1:{ports['prometheus']}/-/ready")
    if component == "pushgateway":
        return lambda: answers(f"http://127.0.0.1:{ports['pushgateway']}/-/ready")
    if component == "replica":

        def replica_back() -> bool:
            replica = lab.state()["replicas"][-1]
            url = f"http://127.0.0.1:{replica['port']}"
            return (
                replica["proc"]["pid"] != old_pid
                and replica["status"] == "running"
                and lab.traefik_servers().get(url) == "UP"
            )

        return replica_back

    def supervisor_back() -> bool:
        # A dead supervisor is noticed and started again by the next lab command.
        lab.cli("status", check=False)
        proc = lab.state()["components"]["supervisor"]["proc"]
        return proc["pid"] != old_pid and _alive(proc["pid"])

    return supervisor_back


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "component", ["replica", "traefik", "prometheus", "pushgateway", "supervisor"]
)
def test_kill_9_under_load_costs_little_and_loses_nothing_stored(
    chaos_lab: NativeLab, component: str, tmp_path: Path
) -> None:
    lab = chaos_lab
    wait_until(lambda: answers(f"{lab.api}/ready"), timeout=30, what="the stack ready")
    run_id = f"chaos-{component}"
    summary_file = tmp_path / "summary.json"
    started = time.time()
    locust = start_locust(lab, run_id, summary_file)
    try:
        time.sleep(KILL_AFTER_SECONDS)
        killed_at = time.time()
        stored_before = stored_up_samples(lab, killed_at - 1)
        victim = pid_of(lab, component)
        os.kill(victim, signal.SIGKILL)
        recovery = wait_recovered(recovery_check(lab, component, victim))
        _, stderr = locust.communicate(timeout=RUN_SECONDS + 60)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
    ended = time.time()
    assert "Traceback" not in stderr, stderr[-3000:]
    summary = json.loads(summary_file.read_text())

    wait_until(
        lambda: answers(f"http://127.0.0.1:{lab.ports['prometheus']}/-/ready"),
        timeout=30,
        what="Prometheus",
    )
    time.sleep(3)
    stored_after = stored_up_samples(lab, killed_at - 1)
    pushed = locust_total(lab, run_id)
    cost = FaultCost(
        component=component,
        requests=summary["requests"],
        failures=summary["failures"],
        client_predictions_ok=client_predictions_ok(lab, run_id),
        served_200=served_between(lab, started, ended),
        recovery_seconds=round(recovery, 2),
        prometheus_data_kept=stored_after >= stored_before > 0,
        locust_series_complete=pushed == summary["requests"],
    )
    COSTS.append(cost)

    assert cost.requests > 100, asdict(cost)
    assert cost.prometheus_data_kept, (stored_before, stored_after)
    assert cost.locust_series_complete, (pushed, summary["requests"])
    if component == "replica":
        # Only the requests in flight on the killed replica: at most one per user.
        assert cost.failures <= USERS, asdict(cost)
    elif component in ("prometheus", "pushgateway", "supervisor"):
        # Observability and control are off the request path: nothing fails.
        assert cost.failures == 0, asdict(cost)
    # Whatever died, the stack serves again, through Traefik, with both replicas.
    with httpx.Client(timeout=5) as client:
        statuses = [client.post(f"{lab.api}/predict", json=PENGUIN).status_code for _ in range(20)]
    assert statuses == [200] * 20


def write_artefacts(costs: list[FaultCost]) -> None:
    if not costs:
        return
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(c), "failure_ratio": round(c.failure_ratio, 4)} for c in costs]
    (ARTEFACTS / "chaos.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "Requests include Locust's GET /ready checks; predictions are POST /predict and "
        "/predict/batch. The server's count is Prometheus' increase() over the run, an "
        "extrapolation; a killed replica's last unscraped second is missing from it.",
        "",
        f"Chaos suite: kill -9 under Locust load ({USERS} users, think time 0.1 s, "
        f"{RUN_SECONDS} s runs, kill after {KILL_AFTER_SECONDS} s; 2 replicas x 0.5 CPU)",
        "",
        "| killed | requests | failed | failed % | predictions OK (client) "
        "| predictions 200 (server, approx.) | back after s | stored data kept "
        "| Locust series complete |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for c in costs:
        lines.append(
            f"| {c.component} | {c.requests} | {c.failures} | {100 * c.failure_ratio:.2f} "
            f"| {c.client_predictions_ok} | {c.served_200} | {c.recovery_seconds:.1f} "
            f"| {c.prometheus_data_kept} "
            f"| {c.locust_series_complete} |"
        )
    (ARTEFACTS / "chaos.md").write_text("\n".join(lines) + "\n")
