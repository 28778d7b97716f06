"""The report's answers, from synthetic results (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

from lab.experiments import judge
from lab.experiments.measure import LayerStats, Measurement, ReplicaStats
from lab.experiments.plan import Slo
from lab.experiments.report import trusted, write_report
from lab.experiments.results import ConfigResult, ExperimentResults, Step, load, save
from lab.trust import Flag, FlagKind

PLAN = {
    "name": "t",
    "description": "synthetic",
    "service": {"engine": "sklearn", "batching": "off"},
    "slo": {"error_ratio": 0.01, "p95_seconds": 1.0},
    "target": {"model": "closed", "users": 90, "think_time": 1.0, "arrival_rate": 0},
}


def window(
    config: str, rps: float, errors: float, p95: float, replicas: int, cpu: float = 0.5
) -> Measurement:
    layers = {
        "client": LayerStats(
            rps=rps, error_ratio=errors, p50_s=p95 / 3, p95_s=p95, p99_s=p95 * 2, p95_success_s=p95
        ),
        "edge": LayerStats(rps=rps),
        "server": LayerStats(rps=rps, error_ratio=0.0, p95_s=p95 / 2),
        "model": LayerStats(rps=rps, p95_s=0.008),
    }
    return Measurement(
        config=config,
        run_id=f"{config}-run",
        start=0.0,
        end=30.0,
        layers=layers,
        errors_by_origin={"app": 0.0, "proxy": 0.0, "client": errors},
        replicas=[
            ReplicaStats(
                f"replica-{i}", rps / replicas, p95, cpu * 0.9, cpu, 0.9, 0.2, 1e8, 5e8, 1.0
            )
            for i in range(1, replicas + 1)
        ],
        client_successes=rps * 30,
        server_successes=rps * 30,
        generator_cpu_max=40.0,
    )


def config(
    label: str,
    replicas: int,
    cpus: float,
    rps: float,
    errors: float,
    p95: float,
    knee: float | None,
) -> ConfigResult:
    result = ConfigResult(label, replicas, cpus, int(cpus * 2 * 2**30))
    result.target = [window(label, rps, errors, p95, replicas, cpus)]
    result.meets_slo = judge.meets_slo(result.target[0], Slo())
    rates = [20, 40, 60, 80, 100, 120]
    for rate in rates:
        ok = knee is not None and rate <= knee
        result.steps.append(
            Step(
                rate,
                window(label, rate if ok else rate * 0.8, 0.0, 0.2 if ok else 3.0, replicas),
                ok,
                ok,
            )
        )
        if not ok:
            break
    result.knee_rps = knee
    result.knee_upper_rps = next((s.rate for s in result.steps if not s.ok), None)
    result.failover = {
        "killed": "replica-1",
        "failures": 40 if replicas == 1 else 2,
        "error_ratio": 0.12 if replicas == 1 else 0.004,
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
        },
        started=0.0,
        status="complete",
        configs=[
            config("r1-c0.5-m512m", 1, 0.5, 33, 0.0, 2.5, 30),
            config("r1-c1.0-m1g", 1, 1.0, 66, 0.0, 1.4, 60),
            config("r2-c1.0-m1g", 2, 1.0, 88, 0.0, 0.3, 100),
            config("r2-c0.5-m512m", 2, 0.5, 64, 0.0, 1.6, 60),
        ],
    )


def test_report_answers_from_the_data(tmp_path: Path) -> None:
    save(results(), tmp_path)

    path = write_report(load(tmp_path), tmp_path)
    text = path.read_text()

    assert "**Answer: r2-c1.0-m1g**" in text
    assert "r2-c1.0-m1g sustains 100 RPS against 2 x 60" in text
    assert (
        "Same 1 CPU in all: r2-c0.5-m512m serves 60.0 RPS per core, r1-c1.0-m1g 60.0 (100%)" in text
    )
    assert "**Answer:** no. Measured CPU per request is the same within 10 %" in text
    assert "| r1-c0.5-m512m | 30 |" in text
    assert "single point of failure" in text
    assert "12.00%" in text
    for image in ("slo.png", "cpu.png", "knee.png"):
        assert (tmp_path / image).stat().st_size > 10_000
    assert (tmp_path / "results.csv").read_text().count("\n") == 5


def test_no_deployment_meeting_the_slo_is_said_plainly(tmp_path: Path) -> None:
    data = results()
    for c in data.configs:
        c.meets_slo = False

    text = write_report(data, tmp_path).read_text()

    assert "none of the measured deployments meets the SLO" in text


def test_untrusted_results_are_flagged_and_not_chosen(tmp_path: Path) -> None:
    data = results()
    saturated = data.configs[2]
    saturated.target[0].generator_cpu_max = 99.0
    saturated.flags = judge.flags(saturated.target[0], expected_replicas=2)

    text = write_report(data, tmp_path).read_text()

    assert "load generator saturated (99% CPU)" in text
    assert "**Answer: r2-c1.0-m1g**" not in text


def test_flags_for_each_untrustworthy_condition() -> None:
    m = window("r1-c1.0-m1g", 60, 0.0, 0.2, 1)
    m.generator_cpu_max = 95
    m.layers["server"].overflow_rps = 0.5
    m.server_successes = 1000
    m.client_successes = 900
    m.replicas[0].up_min = 0.0

    found = judge.flags(m, expected_replicas=1, summary={"closed_model_ceiling_rps": 61})

    assert [flag.kind for flag in found] == [
        FlagKind.GENERATOR_SATURATED,
        FlagKind.CLOSED_MODEL_CEILING,
        FlagKind.OVER_TOP_BUCKET,
        FlagKind.COUNTS_DIFFER,
        FlagKind.REPLICA_DOWN,
    ]
    assert "latency in the top bucket (> 60 s) at the server layer" in str(found[2])
    assert judge.flags(window("r1", 60, 0.0, 0.2, 1), expected_replicas=1) == []


def test_trust_follows_the_flag_kind_not_its_wording(tmp_path: Path) -> None:
    data = results()
    best = data.configs[2]
    # A closed-model ceiling limits what a target run says; it does not make it wrong.
    best.flags = [Flag(FlagKind.CLOSED_MODEL_CEILING, "load generator saturated, in words")]
    assert trusted(best)
    best.flags = [Flag(FlagKind.GENERATOR_SATURATED, "any wording at all")]
    assert not trusted(best)
    assert "**Answer: r2-c1.0-m1g**" not in write_report(data, tmp_path).read_text()


def test_flags_survive_a_round_trip_and_old_string_flags_count_against_trust(
    tmp_path: Path,
) -> None:
    data = results()
    data.configs[0].flags = [Flag(FlagKind.CLOSED_MODEL_CEILING, "ceiling")]
    data.configs[0].capacity_flags = [Flag(FlagKind.REPLICA_DOWN, "down").at_rate(40)]
    save(data, tmp_path)

    loaded = load(tmp_path).configs[0]
    assert loaded.flags == [Flag(FlagKind.CLOSED_MODEL_CEILING, "ceiling")]
    assert loaded.capacity_flags == [Flag(FlagKind.REPLICA_DOWN, "40/s: down")]

    # results.json written before flags had kinds held their wording only.
    stored = json.loads((tmp_path / "results.json").read_text())
    stored["configs"][0]["flags"] = ["closed-model ceiling reached (..)"]
    (tmp_path / "results.json").write_text(json.dumps(stored))
    old = load(tmp_path).configs[0]
    assert old.flags[0].kind is FlagKind.UNCLASSIFIED
    assert not trusted(old)


def test_a_knee_no_rate_failed_is_a_lower_bound_kept_out_of_comparisons(tmp_path: Path) -> None:
    data = results()
    top = data.configs[2]
    top.steps = [s for s in top.steps if s.ok]
    top.knee_upper_rps = None

    text = write_report(data, tmp_path).read_text()

    assert "| r2-c1.0-m1g | >= 100 | none: add higher rates |" in text
    assert "r2-c1.0-m1g sustains" not in text
    assert "a lower bound (no rate tried failed)" in text
