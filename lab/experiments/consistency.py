"""The report's check on itself: every verdict and knee it prints follows from its own
step tables, recomputed from the stored windows (`make report` runs it too)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.experiments import judge
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
            name = f"{c.label} @ {step.rate:g}/s"
            found.append(
                Check(
                    f"{name}: 'sustained' is the median of achieved / measured arrivals >= 95 %",
                    step.sustained == judge.step_sustained(step.windows),
                )
            )
            found.append(
                Check(
                    f"{name}: 'within the SLO' is the SLO on the median error ratio and P95",
                    step.passed == judge.step_within_slo(step.windows),
                )
            )
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
