"""The edge part of `make bench`: one replica direct, through Traefik, and two through it.

What it answers: how much serving through the lab's proxy costs a replica (requests/s per
replica core through Traefik against the same replica direct), how far a second replica
carries the throughput on this host, and what the proxy itself spends (CPU seconds per
1,000 requests).

Traefik runs with the lab's own configuration: the static file and the shared dynamic file
(retry middleware, transport) of traefik/, and a route like the native runtime's. Each
replica runs as deployed (`python -m api`) on CPU 0 in a cgroup with a CPU quota of
BENCH_EDGE_REPLICA_CPUS (0.25 by default), the mechanism Docker and the native runtime
use, so two replicas fit one core; Traefik and wrk share the other. "A replica core" is
the CPU the replicas actually used, read from their processes before and after each
point. Where cgroups cannot be made (not root), replicas run without a quota and two of
them share CPU 0, and the results say so. A last pair, direct and through Traefik, runs a
replica with API_BATCH_MAX_WAIT_MS=1: a lever reported apart, never part of the goal.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from rich.progress import Progress, TaskID

from bench.common import VENV_BIN, start_server, stop_server
from lab.core import REPO
from lab.runtimes.native import cgroups
from lab.runtimes.native.configs import traefik_static
from lab.runtimes.native.settings import NativeSettings

# The connections wrk keeps open, as at the top of the serving benchmark.
CONNECTIONS = 128
# Replicas on one core, Traefik and wrk on the other: measured with everything unpinned,
# Traefik's threads ran between a replica's requests on its core and the replica served
# ~25 % fewer requests per CPU second through Traefik than direct, a cost of sharing
# two cores, not of the proxy's protocol (its added headers cost ~0-8 % in our runs).
REPLICA_CPU = 0
PROXY_CPU = 1
WAIT_LEVER_MS = "1"
WAIT_LEVER = f"API_BATCH_MAX_WAIT_MS={WAIT_LEVER_MS}"


@dataclass
class EdgePoint:
    name: str
    replicas: int
    through_traefik: bool
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU the replicas used during the point, in cores (CPU seconds per second).
    replica_cores: float
    rps_per_replica_core: float
    # Traefik's CPU seconds per 1,000 requests answered (None when direct).
    traefik_cpu_s_per_1000: float | None
    traefik_cores: float | None
    # Which repetition of this point this is, from 1.
    run: int = 1
    # The setting a lever point changes (e.g. API_BATCH_MAX_WAIT_MS=1); "" for defaults.
    lever: str = ""
    # Mean rows per model call during the point, from the replicas' model_batch_size
    # histograms: what the micro-batcher merged (None when the replicas were not read).
    rows_per_call: float | None = None


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def _batch_totals(ports: list[int]) -> tuple[float, float]:
    """Rows and model calls so far, summed over the replicas' model_batch_size."""
    rows = calls = 0.0
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("model_batch_size_sum"):
                rows += float(line.rsplit(" ", 1)[1])
            elif line.startswith("model_batch_size_count"):
                calls += float(line.rsplit(" ", 1)[1])
    return rows, calls


def _free_port() -> int:
    from bench.serving import free_port

    return free_port()


class Traefik:
    """Traefik with the lab's configuration, routing to the given replica ports."""

    def __init__(self, work: Path, cpu: int | None) -> None:
        self.work = work
        self.port = _free_port()
        self.admin_port = _free_port()
        dynamic = work / "dynamic"
        dynamic.mkdir(parents=True)
        # The static configuration exactly as the native runtime writes it.
        native = NativeSettings(host="127.0.0.1", web_port=self.port, traefik_port=self.admin_port)
        static = traefik_static(native, dynamic)
        (work / "traefik.yml").write_text(yaml.safe_dump(static))
        (dynamic / "shared.yml").write_text(
            (REPO / "traefik" / "dynamic" / "shared.yml").read_text()
        )
        self.routes = dynamic / "replicas.yml"
        self.cpu = cpu
        self.process: subprocess.Popen[bytes] | None = None

    def route(self, ports: list[int]) -> None:
        """Route /predict round robin to `ports`, as the native runtime writes it."""
        config = {
            "http": {
                "routers": {
                    "predict": {
                        "entryPoints": ["web"],
                        "rule": "PathPrefix(`/`)",
                        "service": "api",
                        "middlewares": ["api-retry@file"],
                    }
                },
                "services": {
                    "api": {
                        "loadBalancer": {
                            "servers": [{"url": f"http://127.0.0.1:{p}"} for p in ports],
                            "healthCheck": {"path": "/ready", "interval": "250ms", "timeout": "5s"},
                            "serversTransport": "api-transport@file",
                            "passHostHeader": True,
                        }
                    }
                },
            }
        }
        staging = self.routes.with_suffix(".tmp")
        staging.write_text(yaml.safe_dump(config))
        staging.replace(self.routes)

    def start(self) -> None:
        from bench.common import pinned

        binary = str(VENV_BIN / "traefik")
        self.process = subprocess.Popen(
            pinned([binary, f"--configFile={self.work / 'traefik.yml'}"], self.cpu),
            stdout=subprocess.DEVNULL,
            stderr=(self.work / "traefik.log").open("wb"),
        )

    def wait_serving(self, ports: list[int], timeout: float = 30) -> None:
        """Until every replica has answered through Traefik (round robin reaches all)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                log = (self.work / "traefik.log").read_text()[-2000:]
                raise RuntimeError(f"traefik exited: {log}")
            try:
                answer = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=1)
                if answer.status_code == 200:
                    seen.add(answer.json()["replica"])
                    if len(seen) >= len(ports):
                        return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"traefik did not route to {len(ports)} replicas within {timeout} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)  # type: ignore[arg-type]


def _measure(
    name: str,
    port: int,
    replicas: list[tuple[int, int]],
    traefik: Traefik | None,
    seconds: int,
    warmup: int,
) -> EdgePoint:
    """One point: wrk on `port`; `replicas` are the (port, pid) of those serving it."""
    from bench.serving import errors_of, wrk

    if warmup:
        wrk(port, CONNECTIONS, warmup, cpu=PROXY_CPU)
    ports = [replica_port for replica_port, _ in replicas]
    pids = [pid for _, pid in replicas]
    traefik_pid = traefik.process.pid if traefik is not None and traefik.process else None
    rows_before, calls_before = _batch_totals(ports)
    started = time.monotonic()
    replica_before = _cpu_seconds(pids)
    traefik_before = _cpu_seconds([traefik_pid]) if traefik_pid else 0.0
    data, _ = wrk(port, CONNECTIONS, seconds, cpu=PROXY_CPU)
    elapsed = time.monotonic() - started
    replica_cores = (_cpu_seconds(pids) - replica_before) / elapsed
    rows_after, calls_after = _batch_totals(ports)
    calls = calls_after - calls_before
    traefik_cpu = (_cpu_seconds([traefik_pid]) - traefik_before) if traefik_pid else None
    answered = data["requests"]
    rps = answered / (data["duration_us"] / 1e6)
    return EdgePoint(
        name=name,
        replicas=len(replicas),
        through_traefik=traefik is not None,
        rps=round(rps, 1),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors_of(data),
        replica_cores=round(replica_cores, 3),
        rps_per_replica_core=round(rps / replica_cores, 1) if replica_cores > 0 else 0.0,
        traefik_cpu_s_per_1000=(
            round(1000 * traefik_cpu / answered, 4)
            if traefik_cpu is not None and answered
            else None
        ),
        traefik_cores=round(traefik_cpu / elapsed, 3) if traefik_cpu is not None else None,
        rows_per_call=round((rows_after - rows_before) / calls, 1) if calls else None,
    )


def run_edge(settings: Any, progress: Progress, task: TaskID) -> dict[str, Any]:
    """The three edge points; `settings` is the serving benchmark's."""
    cpus = settings.edge_replica_cpus
    plan = cgroups.plan("auto", f"bench-edge-{time.monotonic_ns()}")
    if plan.enabled:
        placement = (
            f"replicas on CPU {REPLICA_CPU}, each in a cgroup with a {cpus:g}-CPU quota "
            f"(CFS); Traefik and wrk on CPU {PROXY_CPU}"
        )
    else:
        placement = (
            f"no cgroups ({plan.note}): replicas share CPU {REPLICA_CPU} without a quota, "
            f"Traefik and wrk on CPU {PROXY_CPU}, so 2 replicas cannot serve more than 1"
        )
    api_env = {
        "API_MODEL_DIR": str(settings.model_dir),
        "API_LOG_LEVEL": "warning",
        "API_MAX_QUEUE_SECONDS": "60",
    }
    processes: list[subprocess.Popen[bytes]] = []
    groups: list[dict[str, str]] = []
    points: list[EdgePoint] = []

    def replica(name: str, **extra: str) -> tuple[int, int]:
        port = _free_port()
        env = {**api_env, **extra, "API_PORT": str(port), "API_REPLICA": name}
        command = [str(VENV_BIN / "python"), "-m", "api"]
        if plan.enabled:
            group = cgroups.create(plan, name, cpus, None)
            groups.append(group)
            command = cgroups.wrap(command, group)
            env["LAB_CGROUP_PROCS"] = group["procs"]
            env["API_CPU_LIMIT"] = f"{cpus:g}"
        processes.append(start_server(command, port, REPLICA_CPU, env))
        return port, processes[-1].pid

    def pair(port: int, pid: int, run: int, lever: str = "") -> None:
        """One replica measured direct, then through Traefik (routed to it alone)."""
        for name, target, proxy in (
            ("1 replica, direct", port, None),
            ("1 replica through Traefik", traefik.port, traefik),
        ):
            progress.update(task, description=f"edge: {name} {lever}".rstrip())
            point = _measure(
                name, target, [(port, pid)], proxy, settings.seconds, settings.warmup_seconds
            )
            point.run, point.lever = run, lever
            points.append(point)
            progress.advance(task)

    with tempfile.TemporaryDirectory(prefix="bench-edge-") as work:
        traefik = Traefik(Path(work), PROXY_CPU)
        try:
            first_port, first_pid = replica("edge-1")
            traefik.route([first_port])
            traefik.start()
            traefik.wait_serving([first_port])
            # The same replica direct and through Traefik, alternating, so that a change
            # in the host's load lands on both sides of each ratio.
            for repeat in range(1, settings.edge_repeats + 1):
                pair(first_port, first_pid, repeat)
            second_port, second_pid = replica("edge-2")
            traefik.route([first_port, second_port])
            traefik.wait_serving([first_port, second_port])
            progress.update(task, description="edge: two replicas through Traefik")
            points.append(
                _measure(
                    "2 replicas through Traefik",
                    traefik.port,
                    [(first_port, first_pid), (second_port, second_pid)],
                    traefik,
                    settings.seconds,
                    settings.warmup_seconds,
                )
            )
            progress.advance(task)
            # The lever: the batcher waits up to 1 ms for more rows once a batch has
            # started. Through the proxy requests arrive spread out, so batches are smaller
            # than direct; this shows what waiting for them buys on each side.
            stop_server(processes.pop())
            stop_server(processes.pop())
            wait_port, wait_pid = replica("edge-wait", API_BATCH_MAX_WAIT_MS=WAIT_LEVER_MS)
            traefik.route([wait_port])
            traefik.wait_serving([wait_port])
            pair(wait_port, wait_pid, 1, WAIT_LEVER)
        finally:
            traefik.stop()
            for process in processes:
                stop_server(process)
            for group in groups:
                cgroups.remove(group)
            cgroups.remove_lab_folders(plan.roots)
    return summarize_edge(points, placement, cpus if plan.enabled else None)


def summarize_edge(
    points: list[EdgePoint], placement: str, replica_cpus: float | None
) -> dict[str, Any]:
    """The edge results: every point, the efficiency through Traefik (median of the paired
    runs, and each run's) and the scaling from one replica to two."""
    defaults = [p for p in points if not p.lever]
    direct = [p for p in defaults if p.replicas == 1 and not p.through_traefik]
    one = [p for p in defaults if p.replicas == 1 and p.through_traefik]
    two = [p for p in defaults if p.replicas == 2]
    ratios = _paired_ratios(direct, one)
    levers = {}
    for lever in dict.fromkeys(p.lever for p in points if p.lever):
        pair = [p for p in points if p.lever == lever]
        lever_ratios = _paired_ratios(
            [p for p in pair if not p.through_traefik], [p for p in pair if p.through_traefik]
        )
        levers[lever] = round(statistics.median(lever_ratios), 3) if lever_ratios else None
    one_rps = statistics.median(p.rps for p in one) if one else 0.0
    return {
        "placement": placement,
        "replica_cpus": replica_cpus,
        "connections": CONNECTIONS,
        "points": [asdict(p) for p in points],
        "efficiency": round(statistics.median(ratios), 3) if ratios else None,
        "efficiency_runs": [round(r, 3) for r in ratios],
        "scaling_1_to_2": round(two[0].rps / one_rps, 3) if two and one_rps else None,
        # Through Traefik vs direct per replica core with a lever set (one pair each).
        "lever_efficiency": levers,
    }


def _paired_ratios(direct: list[EdgePoint], proxied: list[EdgePoint]) -> list[float]:
    return [
        t.rps_per_replica_core / d.rps_per_replica_core
        for d, t in zip(direct, proxied, strict=True)
        if d.rps_per_replica_core
    ]


def edge_markdown(edge: dict[str, Any]) -> list[str]:
    """The edge section of serving.md."""
    lines = [
        f"Through Traefik ({edge['connections']} connections; {edge['placement']}):",
        "",
        "| point | run | requests/s | P50 | P99 | errors | replica cores used | requests/s "
        "per replica core | rows per model call | Traefik cores | Traefik CPU s per 1,000 "
        "requests |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in edge["points"]:
        traefik = (
            f"{p['traefik_cores']:.2f} | {p['traefik_cpu_s_per_1000']:.3f}"
            if p["through_traefik"]
            else "- | -"
        )
        name = f"{p['name']}, {p['lever']}" if p.get("lever") else p["name"]
        rows = "-" if p.get("rows_per_call") is None else f"{p['rows_per_call']:.1f}"
        lines.append(
            f"| {name} | {p.get('run', 1)} | {p['rps']:,.0f} | {p['p50_ms']:.2f} ms | "
            f"{p['p99_ms']:.2f} ms | "
            f"{p['errors']} | {p['replica_cores']:.2f} | {p['rps_per_replica_core']:,.0f} | "
            f"{rows} | {traefik} |"
        )
    if edge.get("efficiency") is not None:
        lines += [
            "",
            f"Through Traefik a replica serves **{edge['efficiency']:.0%}** (median; runs: "
            f"{', '.join(f'{r:.0%}' for r in edge.get('efficiency_runs', []))}) of the "
            "requests/s per core it serves direct; two replicas serve "
            f"**{edge['scaling_1_to_2']:.2f}x** what one serves through Traefik.",
        ]
    for lever, ratio in (edge.get("lever_efficiency") or {}).items():
        if ratio is not None:
            lines.append(
                f"With {lever} (one pair) the replica serves {ratio:.0%} through Traefik of "
                "what it serves direct, per core."
            )
    return lines
