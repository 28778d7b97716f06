"""The report's answers and its self-check, from synthetic results (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

from lab.experiments import consistency, judge
from lab.experiments.report import render, write_report
from lab.experiments.results import load, save
from lab.trust import Flag, FlagKind
from tests.lab.experiments.synthetic import TARGET, config, results, step, window


def test_report_answers_from_the_open_model_with_its_margin(tmp_path: Path) -> None:
    save(results(), tmp_path)

    text = write_report(load(tmp_path), tmp_path).read_text()

    assert "**Answer: r1-c1.0-m1g**" in text
    assert "margin 1.50 (knee 75 requests/s)" in text
    # 2 x 0.5 CPU x 512m holds as much CPU and memory: the tie is said, and how it broke.
    assert "Tied on resources: r2-c0.5-m512m also sustains the target" in text
    assert "the tie goes to fewer replicas" in text
    assert "| r1-c0.5-m512m | 25 | 0.50 | 37.5/s |" in text
    assert "| 50 (target) | 50.0 | 40.0 | 80% |" in text
    assert "All " in text and "checks hold" in text
    for image in ("slo.png", "cpu.png", "knee.png"):
        assert (tmp_path / image).stat().st_size > 10_000
    # A row per measured window: 3 per step, one workshop view per deployment.
    windows = sum(len(s.windows) for c in results().configs for s in c.steps) + 4
    assert (tmp_path / "results.csv").read_text().count("\n") == windows + 1


def test_a_closed_model_pass_with_a_knee_below_the_target_does_not_meet() -> None:
    data = results()
    small = data.configs[0]
    # The workshop's view met the SLO (its users throttled themselves) ...
    small.workshop = [window(small.label, 55, 55, p95=0.3)]
    assert judge.within_slo(small.workshop[0])
    # ... but the open model failed at the target's rate: no verdict from the closed run.
    assert small.knee_rps is not None and small.knee_rps < TARGET
    assert judge.meets_target(small.steps, TARGET) is False

    text = render(data)

    assert "| r1-c0.5-m512m | 1 x 0.5 CPU x 512m | 50.0 | 40.0 |" in text
    assert "| 25 | 0.50 | misses |" in text


def test_the_self_check_catches_a_verdict_its_steps_contradict() -> None:
    data = results()
    assert all(check.holds for check in consistency.checks(data))
    data.configs[0].meets_target = True  # as the old report said: "meets" at 64 RPS

    failed = [c.what for c in consistency.checks(data) if not c.holds]

    assert any("r1-c0.5-m512m: the verdict of question 1" in what for what in failed)
    assert any("meets, so its knee is at or above the target" in what for what in failed)
    assert "this report contradicts itself" in render(data)


def test_a_sustained_label_must_follow_from_the_measured_arrivals() -> None:
    data = results()
    bad = data.configs[1].steps[0]
    # 89 % of the measured arrivals completed: the old report called such a step sustained.
    for m in bad.windows:
        m.client_all_rps = 0.89 * (m.offered_rate or 0)
    bad.sustained = True

    failed = [c.what for c in consistency.checks(data) if not c.holds]

    assert failed == [
        "r1-c1.0-m1g @ 25/s: 'sustained' is the median of achieved / measured arrivals >= 95 %"
    ]


def test_no_deployment_meeting_the_target_is_said_plainly() -> None:
    data = results()
    data.configs = [config("r1-c0.5-m512m", 1, 0.5, 25), config("r1-c1.0-m1g", 1, 1.0, 25)]

    assert "none of the measured deployments sustains 50 requests/s" in render(data)


def test_an_untrusted_target_step_is_not_the_answer_and_says_why() -> None:
    data = results()
    best = data.configs[1]
    target = next(s for s in best.steps if s.rate == TARGET)
    for m in target.windows:
        m.generator_cpu_max = 99.0
    target.flags = judge.step_flags(target.windows, 1, 2)

    text = render(data)

    assert "**Answer: r2-c0.5-m512m**" in text
    assert "Smaller, but untrusted at the target: r1-c1.0-m1g" in text
    assert "Tied on resources" not in text
    assert "load generator saturated (99% CPU)" in text
    assert "(in 3 of 3 windows)" in text
    assert "| r1-c1.0-m1g | 50/s | generator-saturated | yes |" in text


def test_a_knee_no_rate_failed_is_a_lower_bound_kept_out_of_comparisons() -> None:
    text = render(results())

    assert "| r2-c1.0-m1g | >= 100 | >= 2.00 | none: add higher rates |" in text
    assert "r2-c1.0-m1g sustains" not in text
    assert "r2-c1.0-m1g: knee >= 100 is only a lower bound" in text


def test_superlinear_scaling_is_printed_with_its_range_and_caveat() -> None:
    text = render(results())

    assert "efficiency 150%, somewhere in 100%-200% given the brackets" in text
    assert "A range above 100 % would mean replicas doing more work per core" in text
    assert "**Answer:** not measurably" in text


def test_an_untrusted_knee_stays_out_of_the_comparisons() -> None:
    data = results()
    small = data.configs[0]
    failing = next(s for s in small.steps if s.rate == small.knee_upper_rps)
    failing.flags = [Flag(FlagKind.HOST_SATURATED, "host busy")]

    text = render(data)

    assert "Scaling: r2-c0.5-m512m" not in text
    assert "- Left out: r1-c0.5-m512m (a step bracketing the knee is untrusted" in text
    assert "workshop 1.99x, ours not comparable" in text


def test_the_workshop_table_stands_beside_ours() -> None:
    text = render(results())

    assert "| r1-c0.5-m512m | 288 | 14.9% | 30,000 ms | 55.0 | 0.0% | 400 ms | 25 |" in text
    assert "r1-c1.0-m1g / r1-c0.5-m512m: workshop 1.99x, our knees 3.00x (2.00x-4.00x" in text


def test_flags_survive_a_round_trip_and_old_string_flags_count_against_trust(
    tmp_path: Path,
) -> None:
    data = results()
    data.configs[0].steps[0].flags = [Flag(FlagKind.REPLICA_DOWN, "down").at_rate(25)]
    data.configs[0].workshop_flags = [Flag(FlagKind.CLOSED_MODEL_BOUND, "bound")]
    save(data, tmp_path)

    loaded = load(tmp_path).configs[0]
    assert loaded.steps[0].flags == [Flag(FlagKind.REPLICA_DOWN, "25/s: down")]
    assert loaded.workshop_flags == [Flag(FlagKind.CLOSED_MODEL_BOUND, "bound")]
    assert not loaded.steps[0].trusted

    # results.json written before flags had kinds held their wording only.
    stored = json.loads((tmp_path / "results.json").read_text())
    stored["configs"][1]["steps"][0]["flags"] = ["generator saturated (..)"]
    (tmp_path / "results.json").write_text(json.dumps(stored))
    old = load(tmp_path).configs[1].steps[0]
    assert old.flags[0].kind is FlagKind.UNCLASSIFIED
    assert not old.trusted


def test_the_same_results_give_the_same_bytes(tmp_path: Path) -> None:
    save(results(), tmp_path)
    first = write_report(load(tmp_path), tmp_path).read_bytes()
    images = {name: (tmp_path / name).read_bytes() for name in ("slo.png", "knee.png")}

    again = write_report(load(tmp_path), tmp_path).read_bytes()

    assert again == first
    assert {name: (tmp_path / name).read_bytes() for name in images} == images


def test_a_step_measured_once_more_is_marked() -> None:
    data = results()
    remeasured = step("r1-c1.0-m1g", 25, ok=True)
    remeasured.remeasured = True
    data.configs[1].steps[0] = remeasured

    assert "sustained, within SLO (re-measured)" in render(data)
