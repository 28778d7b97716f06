"""The report's check on itself: every verdict and knee it prints follows from its own
step tables, recomputed from the stored windows (`make report` runs it too)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.experiments import judge
from lab.experiments import lever as lever_mod
from lab.experiments.results import ConfigResult, ExperimentResults, Step


@dataclass(frozen=True)
class Check:
    what: str
    holds: bool


def target_rate(results: ExperimentResults) -> float:
    return float(results.plan["target"]["arrival_rate"])


def total_cpus(config: ConfigResult) -> float:
    return math.inf if config.cpus is None else config.replicas * config.cpus


def total_memory(config: ConfigResult) -> float:
    return math.inf if config.memory is None else config.replicas * config.memory


def answer(results: ExperimentResults) -> ConfigResult | None:
    """Question 1's answer: the smallest deployment (CPU, then memory, then replicas)
    that meets the target with a trusted step at the target's rate."""
    meeting = [c for c in results.configs if c.meets_target and target_trusted(c, results)]
    if not meeting:
        return None
    return min(meeting, key=lambda c: (total_cpus(c), total_memory(c), c.replicas))


def target_step(config: ConfigResult, results: ExperimentResults) -> Step | None:
    rate = target_rate(results)
    return next((s for s in config.steps if math.isclose(s.rate, rate)), None)


def target_trusted(config: ConfigResult, results: ExperimentResults) -> bool:
    step = target_step(config, results)
    return step is not None and step.trusted


def checks(results: ExperimentResults) -> list[Check]:
    rate = target_rate(results)
    found: list[Check] = []
    for c in results.configs:
        for step in c.steps:
            found += _step_checks(f"{c.label} @ {step.rate:g}/s", step)
        knee, upper = judge.knee(c.steps)
        found.append(
            Check(
                f"{c.label}: knee {c.knee_rps} is the highest sustained step below the first "
                "failing one (question 3)",
                (knee, upper) == (c.knee_rps, c.knee_upper_rps),
            )
        )
        verdict = judge.meets_target(c.steps, rate)
        found.append(
            Check(
                f"{c.label}: the verdict of question 1 follows from its steps (knee >= "
                f"{rate:g}/s, the step at {rate:g}/s measured)",
                bool(c.meets_target) == verdict,
            )
        )
        if c.meets_target:
            found.append(
                Check(
                    f"{c.label}: meets, so its knee is at or above the target",
                    c.knee_rps is not None and c.knee_rps >= rate,
                )
            )
        elif c.knee_rps is not None and c.knee_rps >= rate and target_step(c, results):
            found.append(Check(f"{c.label}: misses although its knee reaches the target", False))
    found += _origin_checks(results)
    found += _lever_checks(results)
    best = answer(results)
    if best is not None:
        smaller = [
            c
            for c in results.configs
            if c.meets_target
            and target_trusted(c, results)
            and (total_cpus(c), total_memory(c), c.replicas)
            < (total_cpus(best), total_memory(best), best.replicas)
        ]
        found.append(Check(f"no trusted deployment smaller than {best.label} meets", not smaller))
    return found


def _step_checks(name: str, step: Step) -> list[Check]:
    return [
        Check(
            f"{name}: 'sustained' is the median of achieved / measured arrivals >= 95 %",
            step.sustained == judge.step_sustained(step.windows),
        ),
        Check(
            f"{name}: 'within the SLO' is the SLO on the median error ratio and P95",
            step.passed == judge.step_within_slo(step.windows),
        ),
    ]


def _origin_checks(results: ExperimentResults) -> list[Check]:
    """Errors by origin share question 1's denominator (the prediction requests the
    client sent): app + proxy + client-born then cover at least the window's error ratio,
    whatever the layers' counting skew. A larger denominator (every request) would not."""
    found = []
    for c in results.configs:
        step = target_step(c, results)
        if step is None:
            continue
        covered = all(
            sum(m.errors_by_origin.values()) + 1e-9 >= (m.layers["client"].error_ratio or 0.0)
            for m in step.windows
            if m.errors_by_origin
        )
        found.append(
            Check(
                f"{c.label}: errors by origin at {target_rate(results):g}/s are shares of "
                "question 1's prediction requests (they cover its error ratio in every window)",
                covered,
            )
        )
    return found


def _lever_checks(results: ExperimentResults) -> list[Check]:
    """The engine lever's steps, knee and ratio, recomputed; its knee is printed as
    measured only when no step says the host or the generator was the limit."""
    found_lever = lever_mod.of(results)
    if found_lever is None or results.engine_lever is None:
        return []
    config = results.engine_lever
    found = []
    for step in config.steps:
        found += _step_checks(f"engine lever {config.label} @ {step.rate:g}/s", step)
    knee, upper = judge.knee(config.steps)
    found.append(
        Check(
            f"engine lever {config.label}: knee {config.knee_rps} follows from its steps",
            (knee, upper) == (config.knee_rps, config.knee_upper_rps),
        )
    )
    reading = found_lever.knee
    limited = any(
        f.kind in lever_mod.HOST_LIMITS or f.invalidates for s in config.steps for f in s.flags
    )
    found.append(
        Check(
            "engine lever: its knee is called measured only when bracketed by trusted steps "
            "none of which says the host or the generator was the limit",
            reading.kind != "measured" or (not limited and reading.high is not None),
        )
    )
    ratio = found_lever.cpu_ratio
    if ratio is not None:
        a, b = found_lever.baseline.cpu_per_1000, found_lever.lever.cpu_per_1000
        assert a is not None and b is not None
        found.append(
            Check(
                "engine lever: the CPU ratio is the baseline's median CPU per prediction over "
                "the lever's, both at the target's step of the same deployment",
                math.isclose(ratio, a.median / b.median)
                and found_lever.baseline.config.label == config.label
                and found_lever.baseline.step is not None
                and found_lever.lever.step is not None,
            )
        )
    return found
