"""report.md and its plots, written from results.json alone (`make report RUN=...`).

The report answers the workshop's four questions from open-model measurements (each
step measured in repeated windows: median and range), puts the workshop's own figures
and its closed-model view beside them without letting them decide, fits a capacity
model to the knees, flags every result that cannot be trusted, and checks itself: every
verdict and knee it prints is recomputed from its step tables (lab/experiments/consistency.py).
Everything here is a pure function of the stored results: the same results.json gives
the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lab import slo, trust
from lab.core import format_cpus, format_memory
from lab.experiments import consistency, judge, predict
from lab.experiments import lever as lever_mod
from lab.experiments.consistency import target_rate, target_step, total_cpus
from lab.experiments.judge import Spread
from lab.experiments.results import ConfigResult, ExperimentResults, Step

GB = 1024**3

# The workshop's published table (closed model: 10,000 users with think time, one
# machine per setup): RPS, error ratio, P95 in seconds.
WORKSHOP = {
    "r1-c0.5-m512m": (288.0, 0.149, 30.0),
    "r1-c1.0-m1g": (574.0, 0.061, 17.0),
    "r2-c1.0-m1g": (1015.0, 0.0024, 0.9),
}


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; columns whose name starts with "#" are numbers (right-aligned)."""
    header = [c.lstrip("#") for c in columns]
    align = ["---:" if c.startswith("#") else "---" for c in columns]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |"] + [
        f"| {' | '.join(row)} |" for row in rows
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _pct(ratio: float | None, digits: int = 2) -> str:
    return "-" if ratio is None else f"{ratio:.{digits}%}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _spread(value: Spread | None, unit: str = "num", digits: int = 1) -> str:
    """Median, then [min-max] when the repeats differ."""
    if value is None:
        return "-"

    def one(x: float) -> str:
        if unit == "ms":
            return f"{x * 1000:,.0f}"
        if unit == "pct":
            return f"{x:.{digits}%}"
        return f"{x:,.{digits}f}"

    suffix = " ms" if unit == "ms" else ""
    if value.count == 1 or one(value.low) == one(value.high):
        return f"{one(value.median)}{suffix}"
    return f"{one(value.median)}{suffix} [{one(value.low)}-{one(value.high)}]"


def _shape(config: ConfigResult) -> str:
    cpus = "unlimited" if config.cpus is None else format_cpus(config.cpus)
    memory = "unlimited" if config.memory is None else format_memory(config.memory)
    return f"{config.replicas} x {cpus} CPU x {memory}"


def _knee_text(config: ConfigResult) -> str:
    if config.knee_rps is None:
        return "none" if config.steps else "-"
    prefix = "" if config.knee_upper_rps is not None else ">= "
    return f"{prefix}{config.knee_rps:,g}"


def _margin(config: ConfigResult, rate: float) -> str:
    if config.knee_rps is None:
        return "-"
    prefix = "" if config.knee_upper_rps is not None else ">= "
    return f"{prefix}{config.knee_rps / rate:.2f}"


def _step_trusted(step: Step | None) -> str:
    if step is None:
        return "-"
    return "yes" if step.trusted else "no (see flags)"


def exact_knee(config: ConfigResult) -> float | None:
    """The knee when it is bracketed (a sustained rate below a failing one), else None."""
    return config.knee_rps if config.knee_upper_rps is not None else None


def _method(results: ExperimentResults) -> str:
    plan = results.plan["capacity"]
    windows = "window" if plan["repeats"] == 1 else "windows"
    return (
        f"each step: {plan['settle']:g} s of warm-up, then {plan['repeats']} {windows} of "
        f"{plan['window']:g} s; the median decides, [min-max] shows the spread; a step "
        f"whose windows disagree (verdicts differ, or the shares of their arrivals they "
        f"completed lie more than {plan['tolerance']:.0%} apart) is measured once more in "
        "its own run, then flagged"
    )


# ------------------------------------------------------------------- answers


def _smallest(results: ExperimentResults) -> list[str]:
    rate = target_rate(results)
    lines = [
        "## 1. The smallest deployment that meets the SLO at the target load",
        "",
        f"Target: **{rate:g} requests/s arriving** (open model: a Poisson arrival clock, "
        "whatever the latency). A deployment meets it when the step at that rate is "
        f"sustained (achieved >= {trust.SUSTAINED_RATIO:.0%} of the arrivals measured in "
        f"the window) within the SLO ({slo.describe()}), and so is every lower step: its "
        "knee (question 3) is at or above the target. Margin = knee / target. "
        f"Method: {_method(results)}.",
        "",
    ]
    rows = []
    for c in results.configs:
        step = target_step(c, results)
        found = judge.figures(step.windows) if step else None
        verdict = "meets" if c.meets_target else "misses"
        if step is None and not c.meets_target:
            verdict = f"misses (failed below {rate:g}/s)" if c.steps else "-"
        rows.append(
            [
                c.label,
                _shape(c),
                _spread(found.offered if found else None),
                _spread(found.achieved if found else None),
                _spread(found.error_ratio if found else None, "pct", 2),
                _spread(found.p95 if found else None, "ms"),
                _knee_text(c),
                _margin(c, rate),
                verdict,
                _step_trusted(step),
            ]
        )
    columns = ["config", "deployment", f"#offered at {rate:g}/s (arrivals/s)", "#achieved (req/s)"]
    columns += ["#errors", "#P95 (all requests)", "#knee (req/s)", "#margin", "verdict", "trusted"]
    lines += _table(columns, rows)
    lines.append("")
    best = consistency.answer(results)
    if best is not None:
        step = target_step(best, results)
        assert step is not None
        found = judge.figures(step.windows)
        lines.append(
            f"**Answer: {best.label}** ({_shape(best)}; {_num(total_cpus(best), 2)} CPU and "
            f"{_num(consistency.total_memory(best) / GB, 2)} GB in all) is the smallest "
            f"deployment measured that sustains {rate:g} requests/s within the SLO: "
            f"{_spread(found.error_ratio, 'pct', 2)} errors, P95 {_spread(found.p95, 'ms')} "
            f"(median [range] of {found.p95.count if found.p95 else 0} windows); margin "
            f"{_margin(best, rate)} (knee {_knee_text(best)} requests/s)."
        )
        key = (total_cpus(best), consistency.total_memory(best), best.replicas)
        tied = [
            c.label
            for c in results.configs
            if c is not best
            and c.meets_target
            and consistency.target_trusted(c, results)
            and (total_cpus(c), consistency.total_memory(c)) == key[:2]
        ]
        if tied:
            lines.append(
                f"Tied on resources: {', '.join(tied)} also sustain{'s' if len(tied) == 1 else ''} "
                "the target with the same CPU and memory in all; the tie goes to fewer "
                "replicas. Compare their margins and P95 in the table: more replicas also "
                "survive the loss of one (question 4)."
            )
        unsure = [
            c.label
            for c in results.configs
            if (total_cpus(c), consistency.total_memory(c), c.replicas) < key
            and not consistency.target_trusted(c, results)
            and target_step(c, results) is not None
        ]
        if unsure:
            lines.append(
                f"Smaller, but untrusted at the target: {', '.join(unsure)} (see the flags); "
                "on a quieter host the answer may be smaller."
            )
    else:
        untrusted = [c.label for c in results.configs if c.meets_target]
        why = (
            f" ({', '.join(untrusted)} met it, but with untrusted measurements: see the flags)"
            if untrusted
            else ""
        )
        lines.append(
            f"**Answer: none of the measured deployments sustains {rate:g} requests/s within "
            f"the SLO with a trusted result{why}.** Add larger deployments to the plan, or "
            "lower the target."
        )
    return lines


def _workshop_view(results: ExperimentResults) -> list[str]:
    view = results.plan.get("workshop_view")
    measured = [c for c in results.configs if c.workshop]
    if not view or not measured:
        return []
    bound = trust.closed_model_bound(view["users"], view["think_time"])
    lines = [
        "### The workshop's view (closed model): shown, never deciding",
        "",
        f"{view['users']} users, each waiting {view['think_time']:g} s (0.5x-1.5x) between "
        f"an answer and its next request, one {view['window']:g} s window after "
        f"{view['warmup']:g} s. Its RPS is set by the users as much as by the service "
        f"(users / (think time + latency), Little's law), so it measures no capacity; at most "
        f"the users offer users / think time = {_num(bound)} requests/s.",
        "",
    ]
    rows = []
    for c in measured:
        m = c.workshop[-1]
        client = m.layers["client"]
        kinds = ", ".join(sorted({f.kind.value for f in c.workshop_flags})) or "-"
        rows.append(
            [
                c.label,
                _num(m.achieved_rate, 1),
                _pct(client.error_ratio),
                _ms(client.p95_s),
                _ms(client.p95_success_s),
                "meets" if judge.within_slo(m) else "misses",
                kinds,
            ]
        )
    columns = ["config", "#achieved (req/s)", "#errors", "#P95 (all)"]
    columns += ["#P95 (successful only, second view)", "SLO in this view", "flags"]
    lines += _table(columns, rows)
    return lines


def _resources(results: ExperimentResults) -> list[str]:
    lines = [
        "## 2. Do replicas reduce the resources needed?",
        "",
        "Throughput per allocated resource at each deployment's knee (question 3). Only "
        "bracketed knees (a sustained step below a failing one) whose bracketing steps are "
        "trusted enter the comparisons; a lower bound or a host-bound step would bias them.",
        "",
    ]
    rows = []
    for c in results.configs:
        knee = exact_knee(c)
        cores, gb = total_cpus(c), consistency.total_memory(c) / GB
        rps_core = knee / cores if knee and math.isfinite(cores) else None
        rps_gb = knee / gb if knee and math.isfinite(gb) else None
        step = next((s for s in c.steps if s.rate == c.knee_rps), None)
        found = judge.figures(step.windows) if step else None
        memory = _max(r.memory_peak_bytes for s in c.steps for m in s.windows for r in m.replicas)
        rows.append(
            [
                c.label,
                _num(cores, 2),
                _num(gb, 2),
                _knee_text(c),
                "-" if c.knee_upper_rps is None else f"{c.knee_upper_rps:g}",
                _num(rps_core, 1),
                _num(rps_gb, 1),
                _spread(found.cpu_of_limit if found else None, "pct", 0),
                "-" if memory is None else format_memory(int(memory // 2**20) * 2**20),
                _compared(c),
            ]
        )
    columns = ["config", "#CPU in all", "#GB in all", "#knee (req/s)", "#fails at"]
    columns += ["#req/s per core", "#req/s per GB", "#CPU of limit at the knee"]
    lines += _table([*columns, "#peak memory per replica", "compared"], rows)
    lines.append("")
    lines += _scaling_statements(results.configs)
    return lines


def _compared(config: ConfigResult) -> str:
    if exact_knee(config) is None:
        return "no (lower bound)" if config.knee_rps is not None else "no (no knee)"
    return "yes" if _comparable(config) else "no (untrusted step)"


def _comparable(config: ConfigResult) -> bool:
    """A knee that may enter a comparison: bracketed, and both bracketing steps trusted."""
    return exact_knee(config) is not None and predict.knee_trusted(config)


def _bracket(config: ConfigResult) -> tuple[float, float]:
    """The knee's bracket [last sustained rate, first failing rate)."""
    assert config.knee_rps is not None and config.knee_upper_rps is not None
    return config.knee_rps, config.knee_upper_rps


def _scaling_statements(configs: list[ConfigResult]) -> list[str]:
    """Compare deployments that differ in one way only: more replicas of the same size
    (scaling efficiency), or the same total CPU split into more replicas (requests per
    core). Each knee is only known within its bracket, so each ratio is a range; a
    difference counts only when the whole range lies beyond 100 % +- 10 %."""
    statements: list[str] = []
    ranges: list[tuple[float, float]] = []
    left_out = sorted(c.label for c in configs if exact_knee(c) and not _comparable(c))
    by_limits: dict[tuple[float | None, int | None], list[ConfigResult]] = {}
    for c in configs:
        by_limits.setdefault((c.cpus, c.memory), []).append(c)
    for group in by_limits.values():
        single = next((c for c in group if c.replicas == 1 and _comparable(c)), None)
        for c in group:
            if single is None or c is single or not _comparable(c):
                continue
            (low, high), (base_low, base_high) = _bracket(c), _bracket(single)
            ratio = (low / (c.replicas * base_high), high / (c.replicas * base_low))
            ranges.append(ratio)
            statements.append(
                f"- Scaling: {c.label} sustains {low:g} req/s (fails at {high:g}) against "
                f"{c.replicas} x {base_low:g} (fails at {base_high:g}) for {single.label}: "
                f"efficiency {low / (c.replicas * base_low):.0%}, somewhere in "
                f"{ratio[0]:.0%}-{ratio[1]:.0%} given the brackets."
            )
    for a in configs:
        for b in configs:
            same_cpu = math.isfinite(total_cpus(a)) and total_cpus(a) == total_cpus(b)
            if a.replicas > b.replicas and same_cpu and _comparable(a) and _comparable(b):
                (a_low, a_high), (b_low, b_high) = _bracket(a), _bracket(b)
                ratio = (a_low / b_high, a_high / b_low)
                ranges.append(ratio)
                statements.append(
                    f"- Same {total_cpus(a):g} CPU in all: {a.label} sustains {a_low:g} req/s, "
                    f"{b.label} {b_low:g} ({a_low / b_low:.0%}, somewhere in "
                    f"{ratio[0]:.0%}-{ratio[1]:.0%} given the brackets)."
                )
    if left_out:
        statements.append(
            f"- Left out: {', '.join(left_out)} (a step bracketing the knee is untrusted, see "
            "the flags)."
        )
    if not ranges:
        paired = any(len(group) > 1 for group in by_limits.values())
        reason = (
            "the comparable deployments have no trusted, bracketed knee; widen the capacity "
            "rates or rerun on a quieter host"
            if paired
            else "no two measured deployments differ only in their replica count (add pairs "
            "such as r1-c1.0-m1g and r2-c0.5-m512m)"
        )
        statements.append(f"**Answer:** the data cannot tell: {reason}.")
        return statements
    statements.append(
        "- Each replica holds its own copy of the model and runtime: memory grows with the "
        "replica count whatever the load (peak memory per replica above)."
    )
    if any(high > 1.1 for _, high in ranges):
        statements.append(
            "- A range above 100 % would mean replicas doing more work per core; for "
            "CPU-bound work that reads as the knees' resolution (each is known only within "
            "its bracket) and the host's noise, unless the whole range lies above 110 %."
        )
    if all(low > 1.1 for low, _ in ranges):
        answer = (
            "yes, here: more replicas served more requests per core than fewer, beyond the "
            "knees' resolution, at the cost of one model copy in memory per replica"
        )
    elif all(high < 0.9 for _, high in ranges):
        answer = (
            "no, they cost more: more replicas served fewer requests per core, beyond the "
            "knees' resolution, and each holds its own model in memory"
        )
    else:
        answer = (
            "not measurably: the ranges above do not all lie beyond 100 % +- 10 % on one "
            "side, so within the knees' resolution replicas add throughput in step with "
            "the CPU they bring, and availability (question 4), but a given load needs "
            "about the same CPU and more memory; finer capacity rates would narrow the ranges"
        )
    statements.append(f"**Answer:** {answer}.")
    return statements


def _steps_table(c: ConfigResult, rate: float) -> list[str]:
    """A deployment's steps, one row each: medians and [ranges] of its windows."""
    rows = []
    for step in sorted(c.steps, key=lambda s: (s.rate, s.refined)):
        found = judge.figures(step.windows)
        if step.ok:
            outcome = "sustained, within SLO"
        elif not step.sustained:
            outcome = "not sustained"
        else:
            outcome = "missed SLO"
        if step.refined:
            outcome += " (bisection)"
        if step.remeasured:
            outcome += " (re-measured)"
        marks = []
        if step.rate == c.knee_rps:
            marks.append("knee")
        if math.isclose(step.rate, rate):
            marks.append("target")
        rows.append(
            [
                f"{step.rate:g}" + (f" ({', '.join(marks)})" if marks else ""),
                _spread(found.offered),
                _spread(found.achieved),
                _spread(found.sustained_share, "pct", 0),
                _spread(found.error_ratio, "pct", 2),
                _spread(found.p95, "ms"),
                _spread(found.p95_success, "ms"),
                _spread(found.cpu_of_limit, "pct", 0),
                _spread(found.host_busy, "pct", 0),
                str(len(step.windows)),
                outcome,
                _step_trusted(step),
            ]
        )
    columns = ["#rate", "#offered (arrivals/s)", "#achieved (req/s)", "#sustained"]
    columns += ["#errors", "#P95 (all)", "#P95 (successful)", "#CPU of limit (max replica)"]
    return _table([*columns, "#host CPU", "#windows", "result", "trusted"], rows)


def _bisected(results: ExperimentResults) -> str:
    refine = int(results.plan["capacity"].get("refine", 1))
    if refine == 0:
        return " (no bisection: the knee lies between two measured steps)"
    return ", then bisected " + ("once" if refine == 1 else f"{refine} times")


def _capacity(results: ExperimentResults) -> list[str]:
    rate = target_rate(results)
    lines = [
        "## 3. Maximum sustainable RPS",
        "",
        "Open model, one arrival rate per step, stepped up until a step fails"
        f"{_bisected(results)}. Offered = arrivals the clock drew per second, measured; achieved = "
        f"requests completed per second (every request: each arrival sends one, 90 % of them "
        f"predictions); sustained = achieved / offered >= {trust.SUSTAINED_RATIO:.0%} on the "
        "median; errors and P95 are those of prediction requests, P95 over all of them "
        "(successes and failures; P95 of successful requests only is the second view). The "
        f"knee is the highest step sustained within the SLO below the first failing one. "
        f"Method: {_method(results)}.",
        "",
    ]
    rows = []
    for c in results.configs:
        failing = min((s for s in c.steps if not s.ok), key=lambda s: s.rate, default=None)
        detail = "-"
        if failing is not None:
            found = judge.figures(failing.windows)
            detail = (
                f"achieved {_spread(found.achieved)} of {_spread(found.offered)}, errors "
                f"{_spread(found.error_ratio, 'pct', 2)}, P95 {_spread(found.p95, 'ms')}"
            )
        first = "none: add higher rates" if failing is None else f"{failing.rate:g}/s"
        rows.append([c.label, _knee_text(c), _margin(c, rate), first, detail])
    columns = ["config", "#knee (req/s)", "#margin (knee / target)", "#first failing step"]
    lines += _table([*columns, "at that step (median [range])"], rows)
    lines.append("")
    for c in results.configs:
        if not c.steps:
            continue
        lines += [f"Steps of {c.label}:", "", *_steps_table(c, rate), ""]
    lines.append(
        "![capacity: median and range of each step; knee starred, untrusted crossed](knee.png)"
    )
    return lines


def _model(results: ExperimentResults) -> list[str]:
    lines = ["## 5. A capacity model: predict, then verify", ""]
    prediction = results.prediction
    if prediction is not None:
        model = predict.Fit.from_dict(prediction["fit"])
        lines += [
            f"This run verified a prediction made from {prediction['source']}: "
            f"{model.describe()} ({model.why}).",
            "",
        ]
    else:
        model = predict.fit(results.configs)
        if model is None:
            lines.append(
                "No bracketed, trusted knee of a CPU-limited deployment: nothing to fit a model to."
            )
            return lines
        lines += [
            f"Fitted to this run's knees: {model.describe()}. Why this model: {model.why}.",
            "",
        ]
    rows = [
        [p.label, _num(p.cores, 2), _num(p.knee), _num(model.predict(p.cores)),
         _pct(model.predict(p.cores) / p.knee - 1, 0)]
        for p in model.points
    ]  # fmt: skip
    lines += _table(["fitted on", "#CPU in all", "#knee", "#model", "#model error"], rows)
    if model.left_out:
        lines += ["", "Left out of the fit: " + "; ".join(model.left_out) + "."]
    lines.append("")
    if prediction is not None:
        measured = next((c for c in results.configs if c.label == prediction["label"]), None)
        target = float(prediction["target_rps"])
        knee = _knee_text(measured) if measured else "-"
        verdict = "-" if measured is None else ("meets" if measured.meets_target else "misses")
        lines += _table(
            ["deployment", "#target (req/s)", "#predicted knee", "#measured knee", "verdict"],
            [
                [
                    prediction["label"],
                    f"{target:g}",
                    _num(prediction["predicted_knee"]),
                    knee,
                    verdict,
                ]
            ],
        )
        lines.append("")
        if measured is not None:
            lines.append(
                f"The model's smallest deployment for {target:g} req/s was "
                f"{prediction['label']}: it {verdict} the target. "
                + _prediction_error(prediction["predicted_knee"], measured)
            )
        if prediction.get("extrapolated"):
            lines.append(
                "The prediction extrapolated beyond the CPU totals the model was fitted on: "
                "read it as a first guess."
            )
    else:
        rate = target_rate(results)
        try:
            choice = predict.smallest(model, rate)
        except ValueError as exc:
            lines.append(f"For {rate:g} req/s: {exc}.")
        else:
            lines.append(
                f"For the target {rate:g} req/s the model's smallest deployment is "
                f"{choice.deployment.label} (predicted knee {choice.predicted_knee:,.0f}). "
                "`python -m lab capacity --target-rps N` runs such a prediction once and "
                "reports predicted against measured."
            )
    return lines


def _prediction_error(predicted: float, measured: ConfigResult) -> str:
    """Where the predicted knee falls against the measured bracket [knee, first failure)."""
    low, high = measured.knee_rps, measured.knee_upper_rps
    if low is None:
        return (
            f"Predicted knee {predicted:,.0f}, but no step was sustained (the lowest failed "
            f"at {high:g}/s): the model is optimistic by at least "
            f"{predicted / (high or 1) - 1:.0%}."
        )
    if predicted < low:
        return (
            f"Predicted knee {predicted:,.0f}, measured at least {low:g}: the model is "
            f"pessimistic by at least {low / predicted - 1:.0%}."
        )
    if high is None:
        return (
            f"Predicted knee {predicted:,.0f}; every step up to {low:g}/s was sustained, so "
            "the measured knee is a lower bound and the prediction is not contradicted."
        )
    if predicted < high:
        return (
            f"Predicted knee {predicted:,.0f} lies inside the measured bracket [{low:g}, "
            f"{high:g}): the prediction holds at this resolution."
        )
    return (
        f"Predicted knee {predicted:,.0f}, but {high:g}/s already failed: the model is "
        f"optimistic by at least {predicted / high - 1:.0%}."
    )


def _engine_name(engine: lever_mod.EngineAtTarget) -> str:
    return f"{engine.engine}, batching {engine.batching}"


def _lever_knee_text(reading: lever_mod.KneeReading) -> str:
    if reading.kind == "measured":
        return _num(reading.low)
    if reading.kind == "lower-bound":
        return f">= {_num(reading.low)}"
    return "not measured (host-limited)"


def _lever_needs(results: ExperimentResults, found: lever_mod.Lever) -> list[list[str]]:
    """Resources each engine needs for the target: busy cores from its CPU per prediction
    (a floor), and the smallest deployment by a capacity model."""
    rate = found.target_rate
    rows = []
    model = predict.fit(results.configs) if results.prediction is None else None
    for which, engine in (("baseline", found.baseline), ("lever", found.lever)):
        floor = engine.cores_for(rate)
        floor_text = "-" if floor is None else f"{floor:.2f}"
        size = "-"
        how = "-"
        if which == "baseline":
            if model is not None:
                try:
                    choice = predict.smallest(model, rate)
                except ValueError as exc:
                    how = f"section 5's model: {exc}"
                else:
                    size = f"{choice.cores:.2f}"
                    how = (
                        f"section 5's model ({model.model}): {choice.deployment.label}, "
                        f"predicted knee {choice.predicted_knee:,.0f}"
                    )
            else:
                best = consistency.answer(results)
                if best is not None:
                    size = f"{total_cpus(best):.2f}"
                    how = f"question 1's answer: {best.label} (no model fitted)"
        else:
            cores = total_cpus(engine.config)
            reading = found.knee
            if reading.kind == "measured" and reading.low and math.isfinite(cores):
                per_core = reading.low / cores
                # The proportional model of section 5 on the lever's one bracketed knee.
                need = rate / per_core
                size = f"{need:.2f}"
                how = f"proportional to its knee: {per_core:,.0f} req/s per core"
            elif engine.meets and engine.trusted and math.isfinite(cores):
                size = f"<= {cores:.2f}"
                how = (
                    f"measured: {engine.config.label} met the target; its knee is "
                    f"{'a lower bound' if reading.kind == 'lower-bound' else 'host-limited'}, "
                    "so no model can place the smallest size below it"
                )
        rows.append([_engine_name(engine), floor_text, size, how])
    return rows


def _engine_lever(results: ExperimentResults) -> list[str]:
    found = lever_mod.of(results)
    if found is None:
        return []
    rate = found.target_rate
    config = found.lever.config
    lever_plan = results.plan["engine_lever"]
    others = [r for r in lever_plan.get("rates", []) if not math.isclose(r, rate)]
    lines = [
        "## 6. The engine as a lever",
        "",
        f"The same deployment ({config.label}: {_shape(config)}), the same target ({rate:g} "
        "requests/s arriving), SLO and method; only the engine changes: "
        f"{_engine_name(found.baseline)} (the plan's, the matrix's own step at the target) "
        f"against {_engine_name(found.lever)}, measured once more at {rate:g}/s"
        + (f" and {', '.join(f'{r:g}' for r in others)}/s" if others else "")
        + ". CPU-seconds per 1,000 predictions = the replicas' CPU over the prediction "
        "requests completed, per window (median [range]).",
        "",
    ]
    rows = []
    for engine in (found.baseline, found.lever):
        step = engine.step
        figures = judge.figures(step.windows) if step else None
        verdict = "-" if step is None else ("meets" if engine.meets else "misses")
        knee = _knee_text(engine.config) if engine is found.baseline else None
        rows.append(
            [
                _engine_name(engine),
                _spread(figures.offered if figures else None),
                _spread(figures.achieved if figures else None),
                _spread(figures.error_ratio if figures else None, "pct", 2),
                _spread(engine.p95, "ms"),
                _spread(engine.cores_used, "num", 2),
                _spread(engine.cpu_per_1000, "num", 2),
                verdict,
                knee if knee is not None else _lever_knee_text(found.knee),
                _step_trusted(step),
            ]
        )
    columns = ["engine", f"#offered at {rate:g}/s", "#achieved (req/s)", "#errors"]
    columns += ["#P95 (all)", "#replicas' CPU (cores)", "#CPU-s per 1,000 predictions"]
    lines += _table([*columns, "verdict", "#knee (req/s)", "trusted"], rows)
    lines.append("")
    cpu, p95 = found.cpu_ratio, found.p95_ratio
    if cpu is not None and p95 is not None:
        both = found.baseline.trusted and found.lever.trusted
        lines.append(
            f"**Answer:** at {rate:g} requests/s on {config.label}, "
            f"{found.lever.engine} spends **{cpu:.1f}x less CPU per prediction** than "
            f"{found.baseline.engine} ({_num(found.lever.cpu_per_1000.median, 2)} against "
            f"{_num(found.baseline.cpu_per_1000.median, 2)} CPU-seconds per 1,000; medians), "
            f"with a P95 {p95:.1f}x lower ({_ms(found.lever.p95.median)} against "
            f"{_ms(found.baseline.p95.median)}). At the target the {found.baseline.engine} "
            f"step {'meets' if found.baseline.meets else 'misses'} the SLO, the "
            f"{found.lever.engine} step {'meets' if found.lever.meets else 'misses'} it"
            + ("." if both else "; one of the two steps is untrusted (see the flags).")
        )
        if not found.baseline.meets:
            lines.append(
                f"A step that misses runs at its CPU limit: {found.baseline.engine}'s CPU per "
                "prediction there is a floor, and the ratio with it."
            )
    else:
        lines.append("**Answer:** the data cannot tell: a step at the target is missing.")
    lines.append("")
    reading = found.knee
    if reading.kind == "measured":
        lines.append(
            f"The {found.lever.engine} engine's knee on {config.label}: {_num(reading.low)} "
            f"requests/s (fails at {_num(reading.high)})."
        )
    elif reading.kind == "lower-bound":
        top = max(found.lever.config.steps, key=lambda s: s.rate)
        cpu = judge.figures(top.windows).cpu_of_limit
        by_cpu = ""
        if cpu is not None and cpu.median > 0:
            by_cpu = (
                f" At {top.rate:g}/s its replica used {cpu.median:.0%} of its CPU limit: by "
                f"CPU alone its knee would lie near {top.rate / cpu.median:,.0f} requests/s, "
                "an extrapolation, not a measurement (on this host the load generator and "
                "the proxy share the 2 cores with it). `make bench` measures the serving "
                "path's ceiling without Locust."
            )
        lines.append(
            f"Every {found.lever.engine} step up to {_num(reading.low)} requests/s was "
            "sustained within the SLO, no flag saying the host was the limit: its knee is "
            "at least that (a lower bound); add higher rates to bracket it." + by_cpu
        )
    else:
        why = "; ".join([*reading.limits, *(f"the generator {s}" for s in reading.short)])
        lines.append(
            f"**The {found.lever.engine} engine's knee is not measured here** ({why}): "
            "at these rates the load generator and the host, which share 2 cores with the "
            "replicas, are the limit, not the engine; its true knee is far above what this "
            "host can offer. `make bench` measures the serving path's ceiling without Locust."
        )
    lines += ["", f"Resources each engine needs for {rate:g} requests/s:", ""]
    columns = ["engine", "#busy cores at the target (CPU per prediction x rate; a floor)"]
    needs = _lever_needs(results, found)
    lines += _table([*columns, "#CPU in all", "how"], needs)
    floors = [found.baseline.cores_for(rate), found.lever.cores_for(rate)]
    if floors[0] and floors[1]:
        lines += [
            "",
            f"Busy cores at the target: {floors[0] / floors[1]:.1f}x fewer with "
            f"{found.lever.engine}; deployments: {needs[0][2]} against {needs[1][2]} CPU in "
            "all (a deployment cannot be smaller than the smallest replica size measured).",
        ]
    lines += ["", f"Steps of {config.label} serving {_engine_name(found.lever)}:", ""]
    lines += _steps_table(found.lever.config, rate)
    return lines


def _one_vs_several(results: ExperimentResults) -> list[str]:
    lines = ["## 4. One instance against several", ""]
    singles = [c for c in results.configs if c.replicas == 1]
    multis = [c for c in results.configs if c.replicas > 1]
    plan = results.plan.get("failover") or {}
    if not plan.get("enabled", False):
        lines.append("No failover run in this plan.")
        return lines
    lines += [
        f"One replica is killed (kill -9) {plan['kill_after']:g} s into a {plan['duration']:g} s "
        f"closed run of {plan['users']} users. Failed requests count what the kill cost; "
        "their share of the run would depend on the run's length, not on the deployment, so "
        "it is not the measure.",
        "",
    ]
    rows = []
    for c in results.configs:
        f = c.failover or {}
        back = f.get("recovered_after_s")
        step = target_step(c, results)
        found = judge.figures(step.windows) if step else None
        rows.append(
            [
                c.label,
                str(c.replicas),
                _spread(found.p99 if found else None, "ms"),
                str(f.get("killed", f.get("skipped", "-"))),
                _num(f.get("failures")),
                _num(f.get("requests")),
                "-" if back is None else f"{back:.1f} s",
            ]
        )
    columns = ["config", "#replicas", "#P99 at the target rate", "failover: killed"]
    lines += _table([*columns, "#failed requests", "#requests in the run", "#back after"], rows)
    lines.append("")
    fail_single = [
        c.failover["failures"] for c in singles if (c.failover or {}).get("failures") is not None
    ]
    fail_multi = [
        c.failover["failures"] for c in multis if (c.failover or {}).get("failures") is not None
    ]
    if not (singles and multis):
        lines.append("**Answer:** the plan needs both single- and multi-replica deployments.")
    elif fail_single and fail_multi and max(fail_multi) < min(fail_single):
        lines.append(
            "**Answer:** one instance is a single point of failure: its crash failed "
            f"{_range(fail_single)} requests until the restart, while several replicas kept "
            f"serving ({_range(fail_multi)} failed: those in flight on the killed one)."
        )
    else:
        lines.append(
            "**Answer:** in these runs several replicas did not fail fewer requests than one "
            "when one instance was lost; see the failover columns and the flags."
        )
    return lines


def _range(values: list[float]) -> str:
    low, high = min(values), max(values)
    return _num(low) if _num(low) == _num(high) else f"{_num(low)} to {_num(high)}"


def _side_by_side(results: ExperimentResults) -> list[str]:
    ours = {c.label: c for c in results.configs}
    common = [label for label in WORKSHOP if label in ours]
    lines = ["## 7. Side by side with the workshop", ""]
    if not common:
        lines.append("None of the workshop's deployments is in this plan.")
        return lines
    view = results.plan.get("workshop_view") or {}
    rows = []
    for label in common:
        rps, errors, p95 = WORKSHOP[label]
        c = ours[label]
        closed = c.workshop[-1] if c.workshop else None
        rows.append(
            [
                label,
                _num(rps),
                _pct(errors, 1),
                _ms(p95),
                _num(closed.achieved_rate, 1) if closed else "-",
                _pct(closed.layers["client"].error_ratio, 1) if closed else "-",
                _ms(closed.layers["client"].p95_s) if closed else "-",
                _knee_text(c),
            ]
        )
    columns = ["config", "#workshop RPS", "#workshop errors", "#workshop P95"]
    columns += ["#our closed view RPS", "#errors", "#P95 (all)", "#our knee (open model)"]
    lines += _table(columns, rows)
    lines.append("")
    ratios = []
    for small, large in (("r1-c0.5-m512m", "r1-c1.0-m1g"), ("r1-c1.0-m1g", "r2-c1.0-m1g")):
        if small not in ours or large not in ours:
            continue
        theirs = WORKSHOP[large][0] / WORKSHOP[small][0]
        if _comparable(ours[small]) and _comparable(ours[large]):
            (s_low, s_high), (l_low, l_high) = _bracket(ours[small]), _bracket(ours[large])
            ratios.append(
                f"{large} / {small}: workshop {theirs:.2f}x, our knees {l_low / s_low:.2f}x "
                f"({l_low / s_high:.2f}x-{l_high / s_low:.2f}x given the brackets)"
            )
        else:
            ratios.append(
                f"{large} / {small}: workshop {theirs:.2f}x, ours not comparable (a knee "
                "that is a lower bound or rests on untrusted steps)"
            )
    users = view.get("users", "?")
    think = view.get("think_time", "?")
    lines += [
        "Where and why they differ:",
        "",
        "- **Closed against open model.** The workshop's RPS is what 10,000 users with think "
        "time obtained (users / (think time + latency)); once the service saturates, latency "
        "grows until the loop throttles itself, so its RPS sits near capacity with P95 at the "
        "timeout (30 s, 17 s) and errors from timeouts. Our verdicts come from arrival rates "
        "the service must keep up with, so an overloaded step fails instead of slowing the "
        "clients down.",
        f"- **Scale.** Our workshop view runs {users} users with {think} s think time on one "
        "2-core machine that also runs the load generator, Traefik and Prometheus; the "
        "workshop's numbers come from its own hardware and 10,000 users (about 1,000 RPS "
        "offered). Absolute RPS is not comparable; ratios between deployments are.",
        "- **Ratios.** " + ("; ".join(ratios) + "." if ratios else "not enough bracketed knees."),
        "- **Tail latency.** Their P95 of 30 s and 17 s are timeouts of a saturated closed "
        "loop (PITFALLS: a P95 equal to a timeout is the timeout); ours never reaches it "
        "because a failing step ends the search.",
    ]
    return lines


def _flags(results: ExperimentResults) -> list[str]:
    lines = [
        "## Results that cannot be fully trusted",
        "",
        "A row is untrusted when one of its flags invalidates it (load generator or host "
        "saturated, latencies above a histogram's top bucket, scrape gaps, counts that "
        "differ, a replica down, repeats that still disagree); the other flags are caveats. "
        "Each flag is a typed value in results.json (`kind`).",
        "",
    ]
    rows = []
    for c in results.configs:
        for flag in c.flags:
            rows.append([c.label, "deployment", flag.kind.value, _yes(flag.invalidates), str(flag)])
        for flag in c.workshop_flags:
            rows.append(
                [c.label, "workshop view", flag.kind.value, _yes(flag.invalidates), str(flag)]
            )
        for step in sorted(c.steps, key=lambda s: (s.rate, s.refined)):
            for flag in step.flags:
                rows.append(
                    [
                        c.label,
                        f"{step.rate:g}/s",
                        flag.kind.value,
                        _yes(flag.invalidates),
                        str(flag),
                    ]
                )
    lever = results.engine_lever
    if lever is not None:
        engine = results.plan.get("engine_lever", {}).get("service", {}).get("engine", "lever")
        for flag in lever.flags:
            rows.append(
                [f"{lever.label} ({engine})", "deployment", flag.kind.value,
                 _yes(flag.invalidates), str(flag)]
            )  # fmt: skip
        for step in sorted(lever.steps, key=lambda s: (s.rate, s.refined)):
            for flag in step.flags:
                rows.append(
                    [f"{lever.label} ({engine})", f"{step.rate:g}/s", flag.kind.value,
                     _yes(flag.invalidates), str(flag)]
                )  # fmt: skip
    if rows:
        lines += _table(["config", "row", "flag", "invalidates", "why"], rows)
    else:
        lines.append("No flag was raised.")
    return lines


def _yes(value: bool) -> str:
    return "yes" if value else "no (caveat)"


ORIGINS = (
    ("app", "app-born (5xx from a replica)"),
    ("proxy", "proxy-born (5xx from Traefik)"),
    ("client", "client-born (timeouts, refused, 4xx)"),
)


def _errors_by_origin(results: ExperimentResults) -> list[str]:
    rate = target_rate(results)
    lines = [
        "## Errors by origin at the target rate",
        "",
        f"Each origin's errors at the {rate:g}/s step as a share of the prediction requests "
        "the client sent (the denominator of question 1's errors), median [range] over the "
        "step's windows. The replicas' and Traefik's counts are scraped, the client's "
        "pushed: in one window a layer may count an error the client saw in the next, so "
        "the three shares add up to at least question 1's error ratio, not exactly to it.",
        "",
    ]
    rows = []
    for c in results.configs:
        step = target_step(c, results)
        windows = step.windows if step else []
        found = judge.figures(windows) if step else None
        shares = [
            _spread(Spread.of(m.errors_by_origin.get(key) for m in windows), "pct", 2)
            for key, _ in ORIGINS
        ]
        rows.append([c.label, _spread(found.error_ratio if found else None, "pct", 2), *shares])
    columns = ["config", "#errors (question 1)", *(f"#{name}" for _, name in ORIGINS)]
    lines += _table(columns, rows)
    return lines


def _self_check(results: ExperimentResults) -> list[str]:
    found = consistency.checks(results)
    failed = [c for c in found if not c.holds]
    lines = ["## Self-check", ""]
    if failed:
        lines.append(
            f"**{len(failed)} of {len(found)} checks fail: this report contradicts itself.**"
        )
        lines += [f"- {c.what}" for c in failed]
    else:
        lines.append(
            f"All {len(found)} checks hold: every verdict, knee and 'sustained' above was "
            "recomputed from the stored windows and agrees with its table."
        )
    return lines


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --------------------------------------------------------------------- plots


def _errorbar(
    spreads: list[Spread | None], scale: float = 1.0
) -> tuple[list[float], list[list[float]]]:
    medians = [(s.median if s else 0.0) * scale for s in spreads]
    below = [((s.median - s.low) if s else 0.0) * scale for s in spreads]
    above = [((s.high - s.median) if s else 0.0) * scale for s in spreads]
    return medians, [below, above]


def _plot_target(results: ExperimentResults, path: Path) -> None:
    rate = target_rate(results)
    configs = results.configs
    labels = [c.label for c in configs]
    found = []
    for c in configs:
        step = target_step(c, results)
        found.append(judge.figures(step.windows) if step else None)
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    positions = list(range(len(configs)))
    for axis, attribute, scale, title, line in (
        (
            axes[0],
            "achieved",
            1.0,
            f"achieved req/s at {rate:g}/s offered",
            rate * trust.SUSTAINED_RATIO,
        ),
        (axes[1], "error_ratio", 100.0, "errors (%)", 100 * slo.ERROR_RATIO_MAX),
        (axes[2], "p95", 1.0, "P95 of all prediction requests (s)", slo.LATENCY_MAX_SECONDS),
    ):
        spreads = [getattr(f, attribute) if f else None for f in found]
        medians, errors = _errorbar(spreads, scale)
        colours = ["#55A868" if c.meets_target else "#C44E52" for c in configs]
        axis.bar(positions, medians, yerr=errors, capsize=4, color=colours)
        axis.axhline(line, color="red", linestyle="--", label="bound")
        axis.set_title(title)
        axis.set_xticks(positions, labels, rotation=30)
    axes[2].legend()
    figure.suptitle("at the target rate: median and range of the windows; green meets")
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def _plot_cpu(results: ExperimentResults, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(10, 4))
    position = 0.0
    ticks, names = [], []
    for c in results.configs:
        step = target_step(c, results)
        if step is None:
            continue
        names_here = sorted({r.replica for m in step.windows for r in m.replicas})
        for name in names_here:
            spread = Spread.of(
                r.cpu_of_limit for m in step.windows for r in m.replicas if r.replica == name
            )
            medians, errors = _errorbar([spread], 100.0)
            axis.bar(position, medians, yerr=errors, capsize=3, color="#4C72B0")
            ticks.append(position)
            names.append(f"{c.label}\n{name}")
            position += 1
        position += 0.8
    axis.axhline(100, color="red", linestyle="--", label="limit")
    axis.set_xticks(ticks, names, fontsize=7)
    axis.set_ylabel("CPU, % of the replica's limit")
    axis.set_title("per-replica CPU at the target rate (median and range)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def _plot_knee(results: ExperimentResults, path: Path) -> None:
    """Achieved, P95 and errors against the measured offered rate: the median of each
    step's windows with their range as error bars, the knee starred, untrusted steps
    crossed in red."""
    figure, axes = plt.subplots(1, 3, figsize=(16, 4))
    rps_axis, p95_axis, error_axis = axes
    for c in results.configs:
        if not c.steps:
            continue
        steps = sorted(c.steps, key=lambda s: s.rate)
        found = [judge.figures(s.windows) for s in steps]
        offered = [
            f.offered.median if f.offered else s.rate for s, f in zip(steps, found, strict=True)
        ]
        colour = None
        for axis, attribute, scale in (
            (rps_axis, "achieved", 1.0),
            (p95_axis, "p95", 1.0),
            (error_axis, "error_ratio", 100.0),
        ):
            values, errors = _errorbar([getattr(f, attribute) for f in found], scale)
            line = axis.errorbar(
                offered, values, yerr=errors, marker="o", capsize=3, label=c.label, color=colour
            )
            colour = line[0].get_color()
            for s, x, y in zip(steps, offered, values, strict=True):
                if s.rate == c.knee_rps:
                    axis.plot(x, y, marker="*", markersize=16, color=colour)
                if not s.trusted:
                    axis.plot(x, y, marker="x", markersize=12, color="red")
    top = max((s.rate for c in results.configs for s in c.steps), default=1)
    rps_axis.plot([0, top], [0, top], color="grey", linestyle=":", label="achieved = offered")
    rps_axis.set_ylabel("achieved (req/s)")
    rps_axis.set_title("capacity: * knee, x untrusted step")
    p95_axis.axhline(slo.LATENCY_MAX_SECONDS, color="red", linestyle="--", label="SLO")
    p95_axis.set_ylabel("P95 of all prediction requests (s)")
    p95_axis.set_yscale("log")
    p95_axis.set_title("latency as load rises")
    error_axis.axhline(100 * slo.ERROR_RATIO_MAX, color="red", linestyle="--", label="SLO")
    error_axis.set_ylabel("errors (% of prediction requests)")
    error_axis.set_title("errors as load rises")
    for axis in axes:
        axis.set_xlabel("offered (arrivals/s, measured)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


# -------------------------------------------------------------------- report


def render(results: ExperimentResults) -> str:
    """report.md's text: a pure function of the stored results."""
    machine: dict[str, Any] = results.machine
    status = {"complete": "", "running": " (in progress)", "interrupted": " (interrupted: partial)"}
    service = results.plan["service"]
    lines = [
        f"# Capacity report: {results.name}{status.get(results.status, '')}",
        "",
        f"{results.plan.get('description', '').strip()}",
        "",
        f"Runtime: {results.runtime}. Machine: {machine.get('cpu_model', '?')}, "
        f"{machine.get('cpus', '?')} CPUs, {machine.get('memory_gb', '?')} GB, kernel "
        f"{machine.get('kernel', '?')}; limits {machine.get('limits', '?')}; measured "
        f"{machine.get('when', '?')}. Service: engine {service['engine']}, batching "
        f"{service['batching']}. SLO: {slo.describe()} (lab/slo.py).",
        "",
    ]
    if not results.configs:
        return "\n".join([*lines, "No deployment was measured yet.", ""])
    lines += [*_smallest(results), "", "![at the target rate](slo.png)", ""]
    view = _workshop_view(results)
    if view:
        lines += [*view, ""]
    lines += [*_resources(results), "", "![per-replica CPU](cpu.png)", ""]
    lines += [*_capacity(results), ""]
    lines += [*_one_vs_several(results), ""]
    lines += [*_model(results), ""]
    lever_lines = _engine_lever(results)
    if lever_lines:
        lines += [*lever_lines, ""]
    lines += [*_side_by_side(results), ""]
    lines += [*_flags(results), ""]
    lines += _errors_by_origin(results)
    lines += ["", *_self_check(results), ""]
    lines += [
        "Files: results.json (everything this report shows), results.csv (a row per "
        "measured window), raw/ (every answer Prometheus gave, and the host's CPU samples); "
        "`python -m lab report --run <this folder>` rebuilds this file from them, offline.",
        "",
    ]
    return "\n".join(lines)


def write_report(results: ExperimentResults, directory: Path) -> Path:
    if results.configs:
        _plot_target(results, directory / "slo.png")
        _plot_cpu(results, directory / "cpu.png")
        if any(c.steps for c in results.configs):
            _plot_knee(results, directory / "knee.png")
    path = directory / "report.md"
    path.write_text(render(results))
    return path
