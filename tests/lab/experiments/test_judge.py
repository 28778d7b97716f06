"""The judge's decisions and each trust flag, on synthetic windows (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import trust
from lab.experiments import judge
from lab.experiments.raw import busy_share, read_proc_stat
from lab.trust import FlagKind
from tests.lab.experiments.synthetic import step, window


def kinds(flags: list[trust.Flag]) -> list[FlagKind]:
    return [flag.kind for flag in flags]


def test_a_clean_window_raises_no_flag() -> None:
    assert judge.window_flags(window("r1", 50), expected_replicas=1, host_cores=2) == []


def test_the_slo_is_judged_on_p95_of_all_requests_not_of_successes() -> None:
    m = window("r1", 50, p95=0.5)
    m.layers["client"].p95_s = 1.4  # failures (timeouts) included
    m.layers["client"].p95_success_s = 0.5

    assert not judge.within_slo(m)


def test_sustained_compares_with_measured_arrivals_not_the_planned_rate() -> None:
    # The Poisson clock drew 46/s in this window of a 50/s step; 44.5 completed: 97 %.
    m = window("r1", 46.0, 44.5)
    assert judge.window_sustained(m)
    assert not judge.window_sustained(window("r1", 50.0, 44.5))


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (lambda m: setattr(m, "generator_cpu_max", 95.0), FlagKind.GENERATOR_SATURATED),
        (lambda m: setattr(m, "host_busy", 0.97), FlagKind.HOST_SATURATED),
        (lambda m: setattr(m, "client_all_rps", 40.0), FlagKind.ARRIVAL_DEFICIT),
        (lambda m: setattr(m.layers["model"], "overflow_ratio", 0.07), FlagKind.OVER_TOP_BUCKET),
        (lambda m: m.scrapes.update({"replica-1": [6, 10]}), FlagKind.SCRAPE_GAP),
        (lambda m: setattr(m.layers["model"], "p95_s", 0.5), FlagKind.PERCENTILE_INVERSION),
        (lambda m: setattr(m, "client_successes", 900.0), FlagKind.COUNTS_DIFFER),
        (lambda m: setattr(m.replicas[0], "up_min", 0.0), FlagKind.REPLICA_DOWN),
    ],
)
def test_each_flag_from_its_condition(change: object, kind: FlagKind) -> None:
    m = window("r1", 50)
    m.client_successes = m.server_successes = 1000.0
    change(m)  # type: ignore[operator]

    assert kinds(judge.window_flags(m, expected_replicas=1, host_cores=2)) == [kind]


def test_the_model_layer_overflow_names_its_own_top_bucket() -> None:
    m = window("r1", 50)
    m.layers["model"].overflow_ratio = 0.07

    (flag,) = judge.window_flags(m, expected_replicas=1, host_cores=2)

    assert "at the model layer (7.0% above 1 s)" in flag.message
    assert flag.invalidates


def test_one_missed_scrape_is_alignment_two_are_a_gap() -> None:
    m = window("r1", 50)
    m.scrapes = {"replica-1": [9, 10]}
    assert judge.window_flags(m, 1, 2) == []
    m.scrapes = {"replica-1": [8, 10]}
    assert kinds(judge.window_flags(m, 1, 2)) == [FlagKind.SCRAPE_GAP]


def test_host_budget_counts_limits_generator_and_proxy_against_cores() -> None:
    windows = [window("r2", 50) for _ in range(3)]  # generator 30 % of a core, proxy 0.05

    assert judge.host_flag(windows, replica_limits=1.0, host_cores=2) is None
    flag = judge.host_flag(windows, replica_limits=2.0, host_cores=2)
    assert flag is not None and flag.kind is FlagKind.HOST_OVERCOMMITTED
    assert "= 2.35 cores on a 2-core host" in flag.message
    assert not flag.invalidates  # the measured host CPU decides (HOST_SATURATED)


def test_closed_model_bound_is_users_over_think_time_never_with_latency() -> None:
    assert trust.closed_model_bound(60, 1.0) == 60
    assert trust.closed_model_bound(60, 0.0) is None
    m = window("r1", 55, 55)

    found = judge.closed_view_flags(m, 60, 1.0, expected_replicas=1, host_cores=2)

    assert kinds(found) == [FlagKind.CLOSED_MODEL_BOUND]
    # The service slowed the users down to half their bound: the service set the pace.
    slow = window("r1", 30, 30)
    assert judge.closed_view_flags(slow, 60, 1.0, expected_replicas=1, host_cores=2) == []


def test_a_step_flag_says_in_how_many_windows() -> None:
    windows = [window("r1", 50) for _ in range(3)]
    windows[1].generator_cpu_max = 97.0

    (flag,) = judge.step_flags(windows, 1, 2)

    assert flag.kind is FlagKind.GENERATOR_SATURATED
    assert flag.message.endswith("(in 1 of 3 windows)")


def test_repeats_disagree_when_verdicts_differ_or_rates_spread() -> None:
    agree = [window("r1", 50, 50 - n) for n in range(3)]
    assert judge.disagreement(agree, 0.1) is None
    split = [window("r1", 50), window("r1", 50), window("r1", 50, p95=2.0)]
    assert judge.disagreement(split, 0.1) == "2 of 3 windows within the SLO and sustained"
    # Arrivals wander with the Poisson clock: the share completed is what must agree.
    poisson = [window("r1", 44), window("r1", 50), window("r1", 56)]
    assert judge.disagreement(poisson, 0.1) is None
    spread = [window("r1", 50, 50), window("r1", 50, 48), window("r1", 50, 60)]
    assert judge.disagreement(spread, 0.1) == (
        "completed 96% to 120% of their arrivals, more than 10% apart"
    )


def test_the_step_median_decides() -> None:
    windows = [window("r1", 50), window("r1", 50, p95=0.9), window("r1", 50, p95=4.0)]
    assert judge.step_within_slo(windows)
    windows.append(window("r1", 50, p95=3.0))
    assert not judge.step_within_slo(windows)


def test_the_knee_ignores_a_pass_above_a_failure() -> None:
    steps = [step("r1", 25, True), step("r1", 50, False), step("r1", 75, True)]

    assert judge.knee(steps) == (25, 50)
    assert not judge.meets_target(steps, 75)
    assert not judge.meets_target(steps, 50)
    assert judge.meets_target(steps, 25)


def test_host_cpu_comes_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")
    assert read_proc_stat(stat) == (150, 1000)
    samples = [(0.0, 150, 1000), (1.0, 300, 1200), (2.0, 450, 1400)]
    assert busy_share(samples, 0.0, 2.0) == pytest.approx(300 / 400)
    assert busy_share(samples, 1.5, 1.9) is None


def test_recorded_answers_replay_offline_and_the_same_records_give_the_same_bytes(
    tmp_path: Path,
) -> None:
    from lab.experiments.raw import QUERIES, RAW_DIR, RecordingPrometheus, ReplayPrometheus
    from monitoring.prom import Sample

    class Live:
        def query(self, promql: str, time: float | None = None) -> list[Sample]:
            return [Sample({"config": "r1"}, float(len(promql)) + (time or 0))]

    recorder = RecordingPrometheus(Live())  # type: ignore[arg-type]
    answer = recorder.query("sum(rate(x[20s]))", time=100.0004)
    recorder.save(tmp_path)
    first = (tmp_path / RAW_DIR / QUERIES).read_bytes()
    recorder.save(tmp_path)

    assert (tmp_path / RAW_DIR / QUERIES).read_bytes() == first
    replay = ReplayPrometheus(tmp_path)
    assert replay.query("sum(rate(x[20s]))", time=100.0004) == answer
    with pytest.raises(KeyError, match="not in the raw series"):
        replay.query("up", time=1.0)
