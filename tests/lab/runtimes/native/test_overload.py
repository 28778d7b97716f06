"""One replica driven well past its capacity through real Traefik sheds the excess itself,
with 503 and Retry-After, and is never taken out of rotation; the Traefik configuration
that makes this hold (health-check timeout, retry budget, no passive health check, body
cap) is checked too."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from lab.penguins import penguins
from lab.runtimes.native.configs import (
    HEALTH_CHECK,
    TRAEFIK_DIR,
    RunFiles,
    traefik_dynamic,
)
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.state import Proc, Replica
from tests.lab.runtimes.native.lab import NativeLab, running_lab

# Closed-loop clients, each sending its next request as soon as it has an answer, except
# that a shed answer's Retry-After is honoured, as a well-behaved client does. With 256
# of them and 256 penguins a request, a replica at 0.25 CPU (and even one unlimited on
# one core) has far more work offered than it can serve within its queueing bound.
CLIENTS = 256
BATCH = 256
DURATION_S = 20.0
MAX_REQUESTS = 30_000

SHED = 'api_requests_shed_total{handler="%s",reason="%s"}'


def seconds(duration: str) -> float:
    """A Traefik duration such as `250ms` or `5s`, in seconds."""
    if duration.endswith("ms"):
        return float(duration[:-2]) / 1000
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def replica(port: int, **settings_env: str) -> Replica:
    return Replica(
        name=f"replica-{port}",
        port=port,
        cpus=1.0,
        memory=2**30,
        proc=Proc(0, 0.0, ""),
        settings_env=settings_env,
    )


# ------------------------------------------------------------------ configuration


def test_a_busy_replica_has_time_to_answer_its_health_check() -> None:
    # A dead replica leaves within a fraction of a second, but only a replica that cannot
    # answer /ready for seconds is taken out for slowness.
    assert seconds(HEALTH_CHECK["interval"]) <= 0.25
    assert seconds(HEALTH_CHECK["timeout"]) >= 5


def test_traefik_never_ejects_a_replica_for_its_5xx_answers() -> None:
    balancer = traefik_dynamic(NativeSettings(), [replica(8101)], "r1-c1.0-m1g")["http"][
        "services"
    ]["api"]
    # Traefik's passive health check counts every 5xx answer (a shed 503 too) as a
    # failed attempt: it must stay off.
    assert "passiveHealthCheck" not in balancer["loadBalancer"]


def test_retries_are_only_of_requests_that_never_reached_a_replica() -> None:
    shared = yaml.safe_load((TRAEFIK_DIR / "dynamic" / "shared.yml").read_text())
    retry = shared["http"]["middlewares"]["api-retry"]["retry"]

    assert retry["attempts"] == 3
    # Retrying on HTTP statuses would resend shed requests to the next replica.
    assert "status" not in retry
    assert not retry.get("disableRetryOnNetworkError", False)


def test_traefik_keeps_for_a_retry_every_body_a_replica_accepts(tmp_path: Path) -> None:
    files = RunFiles(NativeSettings(run_dir=tmp_path / "run"))
    repository_file = (TRAEFIK_DIR / "dynamic" / "shared.yml").read_text()

    files.write_static([replica(18101), replica(18102)], "r2-c1.0-m1g")
    default = (files.traefik_dynamic_dir / "shared.yml").read_text()
    files.publish([replica(18101), replica(18102, API_MAX_BODY_BYTES="1048576")], "r2")
    raised = (files.traefik_dynamic_dir / "shared.yml").read_text()

    # The default is the repository's file as it is, which the Docker runtime mounts.
    assert default == repository_file
    retry = yaml.safe_load(raised)["http"]["middlewares"]["api-retry"]["retry"]
    assert retry["maxRequestBodyBytes"] == 1_048_576
    # Only that value changed: the comments that explain the file are kept.
    assert raised.replace("1048576", "262144") == repository_file


# ------------------------------------------------------------------------ overload


@dataclass
class Outcomes:
    """What the clients saw, per path."""

    statuses: Counter[tuple[str, int | str]] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)
    overloaded_bodies: Counter[str] = field(default_factory=Counter)
    # Seconds each served (200) request took, for the report.
    served_seconds: list[float] = field(default_factory=list)

    def count(self, path: str, status: int | str) -> int:
        return self.statuses[path, status]

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


async def drive(api: str, stop_at: float) -> Outcomes:
    outcomes = Outcomes()
    rows = [dict(p) for p in penguins()]
    bodies = {
        "/predict": orjson.dumps(rows[0]),
        "/predict/batch": orjson.dumps({"instances": (rows * 2)[:BATCH]}),
    }
    sent = 0

    async def client(index: int) -> None:
        # A connection pool of its own: one pool shared by hundreds of clients costs
        # httpx a whole core in bookkeeping, and the load generator would be measured.
        async with httpx.AsyncClient(base_url=api, timeout=30) as http:
            await session(index, http)

    async def session(index: int, http: httpx.AsyncClient) -> None:
        nonlocal sent
        # One client in four sends single predictions, the others full batches.
        path = "/predict" if index % 4 == 0 else "/predict/batch"
        while time.monotonic() < stop_at and sent < MAX_REQUESTS:
            sent += 1
            started = time.perf_counter()
            try:
                response = await http.post(path, content=bodies[path], headers=JSON)
            except httpx.HTTPError as exc:
                outcomes.statuses[path, type(exc).__name__] += 1
                continue
            outcomes.statuses[path, response.status_code] += 1
            if response.status_code == 200:
                outcomes.served_seconds.append(time.perf_counter() - started)
            if response.status_code == 503:
                wait = response.headers.get("retry-after")
                if wait is not None:
                    outcomes.retry_after[path] += 1
                is_json = response.headers.get("content-type") == "application/json"
                if is_json and response.json().get("error") == "overloaded":
                    outcomes.overloaded_bodies[path] += 1
                await asyncio.sleep(float(wait or 1))

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return outcomes


JSON = {"content-type": "application/json"}


class Watch:
    """Samples, until stopped, Traefik's view of its servers and the replica's /ready
    (asked directly, as Traefik's health check asks it)."""

    def __init__(self, lab: NativeLab, replica_url: str) -> None:
        self.lab = lab
        self.replica_url = replica_url
        self.samples: Counter[str] = Counter()
        self.ready: Counter[int | str] = Counter()
        self.ready_seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                try:
                    statuses = self.lab.traefik_servers().values()
                except httpx.HTTPError:
                    statuses = ["no answer"]
                self.samples.update(statuses or ["no server"])
                started = time.perf_counter()
                try:
                    self.ready[http.get(f"{self.replica_url}/ready").status_code] += 1
                    self.ready_seconds.append(time.perf_counter() - started)
                except httpx.HTTPError as exc:
                    self.ready[type(exc).__name__] += 1
                self._stop.wait(0.2)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def quantiles(values: list[float]) -> str:
    ordered = sorted(values) or [float("nan")]
    at = [ordered[int(q * (len(ordered) - 1))] for q in (0.5, 0.95, 1.0)]
    return "P50 {:.3f} s, P95 {:.3f} s, max {:.3f} s".format(*at)


def replica_sample(url: str, name: str) -> float:
    """One sample of a replica's own metrics, read from the replica directly."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def shed_count(url: str, path: str) -> float:
    return sum(
        replica_sample(url, SHED % (path, reason)) for reason in ("queue_delay", "in_flight_limit")
    )


@pytest.fixture(scope="module")
def small_lab(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    """One replica with a quarter of a CPU (unlimited where cgroups cannot be made)."""
    with running_lab(model_dir, tmp_path_factory.mktemp("overload"), 1, "0.25", "1g") as native:
        yield native


@pytest.mark.slow
def test_overload_is_shed_by_the_replica_and_never_ejects_it(small_lab: NativeLab) -> None:
    state = small_lab.state()
    if state["cgroup_mode"] == "off":
        pytest.skip(f"needs a CPU limit to overload one replica: {state['cgroup_note']}")
    direct = f"http://127.0.0.1:{state['replicas'][0]['port']}"
    paths = ("/predict", "/predict/batch")
    shed_before = {path: shed_count(direct, path) for path in paths}

    with Watch(small_lab, direct) as watch:
        outcomes = asyncio.run(drive(small_lab.api, time.monotonic() + DURATION_S))

    shed_after = {path: shed_count(direct, path) for path in paths}
    print(
        f"\nclients saw {dict(outcomes.statuses)}; replica shed "
        f"{ {p: shed_after[p] - shed_before[p] for p in paths} }; Traefik {dict(watch.samples)}; "
        f"/ready {dict(watch.ready)} {quantiles(watch.ready_seconds)}; "
        f"served predictions {quantiles(outcomes.served_seconds)}"
    )
    served = sum(outcomes.count(path, 200) for path in paths)
    refused = sum(outcomes.count(path, 503) for path in paths)
    # Every answer was a prediction or a shed 503: no timeouts, no 502/504, no errors.
    assert set(status for _, status in outcomes.statuses) <= {200, 503}
    # The load was well past capacity: a large part of it was shed...
    assert refused > 0.2 * outcomes.total
    # ... by the replica itself: each 503 carries Retry-After and the replica's body,
    # and the replica counted exactly the 503s the clients received.
    for path in paths:
        assert outcomes.retry_after[path] == outcomes.count(path, 503)
        assert outcomes.overloaded_bodies[path] == outcomes.count(path, 503)
        assert shed_after[path] - shed_before[path] == outcomes.count(path, 503)
    # Readiness stayed 200 and Traefik kept the only replica in rotation throughout...
    assert watch.ready[200] > 0
    assert set(watch.ready) == {200}, watch.ready
    assert watch.samples["UP"] > 0
    assert set(watch.samples) <= {"UP", "no answer"}, watch.samples
    log = small_lab.run_dir / "logs" / "traefik.log"
    assert "Health check failed" not in log.read_text()
    # ... so a good share of requests was still served.
    assert served > 0.1 * outcomes.total
