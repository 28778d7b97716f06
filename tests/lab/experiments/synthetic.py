"""Synthetic measurements and results for the judge, report and model tests (no processes)."""

from __future__ import annotations

from lab.experiments import judge
from lab.experiments.measure import LayerStats, Measurement, ReplicaStats
from lab.experiments.results import ConfigResult, ExperimentResults, Step

TARGET = 50.0

PLAN = {
    "name": "t",
    "description": "synthetic",
    "service": {"engine": "sklearn", "batching": "off"},
    "target": {"arrival_rate": TARGET},
    "workshop_view": {"users": 60, "spawn_rate": 30, "think_time": 1.0, "warmup": 5, "window": 20},
    "failover": {"enabled": True, "users": 30, "think_time": 1.0, "duration": 12, "kill_after": 4},
    "capacity": {
        "rates": [25, 50, 100],
        "settle": 4,
        "window": 20,
        "repeats": 3,
        "tolerance": 0.1,
        "latency_budget": 3,
        "stop_after_breach": True,
        "refine": 1,
    },
}


def window(
    config: str,
    offered: float,
    achieved: float | None = None,
    errors: float = 0.0,
    p95: float = 0.2,
    replicas: int = 1,
    cpu: float = 0.5,
) -> Measurement:
    """One window: `offered` arrivals/s, `achieved` requests/s (default: all of them)."""
    done = offered if achieved is None else achieved
    layers = {
        "client": LayerStats(
            rps=0.9 * done, error_ratio=errors, p50_s=p95 / 3, p95_s=p95, p99_s=p95 * 1.5,
            p95_success_s=p95, top_bucket_s=60.0, overflow_ratio=0.0,
        ),
        "edge": LayerStats(rps=0.9 * done, p95_s=p95 * 0.9, top_bucket_s=60.0, overflow_ratio=0.0),
        "server": LayerStats(
            rps=0.9 * done, error_ratio=0.0, p95_s=p95 * 0.8, top_bucket_s=60.0, overflow_ratio=0.0
        ),
        "model": LayerStats(rps=0.9 * done, p95_s=0.008, top_bucket_s=1.0, overflow_ratio=0.0),
    }  # fmt: skip
    return Measurement(
        config=config,
        run_id=f"{config}-run",
        start=0.0,
        end=20.0,
        layers=layers,
        errors_by_origin={"app": 0.0, "proxy": 0.0, "client": errors},
        replicas=[
            ReplicaStats(
                f"replica-{i}", done / replicas, p95, cpu * 0.9, cpu, 0.9, 0.2, 1e8, 5e8, 1.0
            )
            for i in range(1, replicas + 1)
        ],
        generator_cpu_max=40.0,
        generator_cpu_mean=30.0,
        offered_rate=offered,
        client_all_rps=done,
        proxy_cpu_cores=0.05,
        host_busy=0.5,
        scrapes={"replica-1": [10, 10], "traefik": [10, 10]},
    )


def step(config: str, rate: float, ok: bool, replicas: int = 1, refined: bool = False) -> Step:
    """Three windows at `rate`: sustained within the SLO, or piled up and slow."""
    windows = [
        window(config, rate, p95=0.2 + 0.01 * n, replicas=replicas)
        if ok
        else window(config, rate, rate * 0.8, p95=3.0 + n, replicas=replicas)
        for n in range(3)
    ]
    return Step(
        rate,
        windows,
        judge.step_within_slo(windows),
        judge.step_sustained(windows),
        judge.step_flags(windows, replicas, 2),
        refined=refined,
    )


def config(
    label: str, replicas: int, cpus: float, knee: float | None, failures: int = 40
) -> ConfigResult:
    """A deployment whose steps (25, 50, 100/s, then a bisection) pass up to `knee`."""
    result = ConfigResult(label, replicas, cpus, int(cpus * 2**30))
    for rate in (25.0, 50.0, 100.0):
        result.steps.append(step(label, rate, knee is not None and rate <= knee, replicas))
        if not result.steps[-1].ok:
            break
    low, high = judge.knee(result.steps)
    if high is not None:
        middle = ((low or 0.0) + high) / 2
        result.steps.append(
            step(label, middle, knee is not None and middle <= knee, replicas, refined=True)
        )
    result.knee_rps, result.knee_upper_rps = judge.knee(result.steps)
    result.meets_target = judge.meets_target(result.steps, TARGET)
    result.workshop = [window(label, 55, 55, p95=0.4, replicas=replicas)]
    result.failover = {
        "killed": "replica-1",
        "failures": failures if replicas == 1 else 2,
        "requests": 400,
        "recovered_after_s": 2.1,
    }
    return result


def results() -> ExperimentResults:
    return ExperimentResults(
        name="t",
        plan=PLAN,
        runtime="native",
        machine={
            "cpu_model": "test cpu",
            "cpus": 2,
            "memory_gb": 24,
            "kernel": "k",
            "limits": "v1 cgroups",
            "when": "then",
        },
        started=0.0,
        status="complete",
        configs=[
            config("r1-c0.5-m512m", 1, 0.5, 25),
            config("r1-c1.0-m1g", 1, 1.0, 75),
            config("r2-c1.0-m1g", 2, 1.0, 150),
            config("r2-c0.5-m512m", 2, 0.5, 75),
        ],
    )
