"""report.md and its plots, written from results.json alone (`make report RUN=...`).

The report answers four questions from the measurements, showing the numbers behind each
answer, and flags every result that cannot be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lab.core import format_cpus, format_memory
from lab.experiments.results import ConfigResult, ExperimentResults

GB = 1024**3


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; columns whose name starts with "#" are numbers (right-aligned)."""
    header = [c.lstrip("#") for c in columns]
    align = ["---:" if c.startswith("#") else "---" for c in columns]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |"] + [
        f"| {' | '.join(row)} |" for row in rows
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2%}"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _total_cpus(config: ConfigResult) -> float:
    return math.inf if config.cpus is None else config.replicas * config.cpus


def _total_gb(config: ConfigResult) -> float:
    return math.inf if config.memory is None else config.replicas * config.memory / GB


def _shape(config: ConfigResult) -> str:
    cpus = "unlimited" if config.cpus is None else format_cpus(config.cpus)
    memory = "unlimited" if config.memory is None else format_memory(config.memory)
    return f"{config.replicas} x {cpus} CPU x {memory}"


def trusted(config: ConfigResult) -> bool:
    """Decided by each flag's kind (lab/trust.py), never by its wording."""
    return not any(flag.invalidates for flag in config.flags)


def _worst(config: ConfigResult, attribute: str, layer: str = "client") -> float | None:
    values = [getattr(m.layers[layer], attribute) for m in config.target]
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mean_rps(config: ConfigResult, layer: str = "client") -> float | None:
    values = [m.layers[layer].rps for m in config.target if m.layers[layer].rps is not None]
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------- answers


def _smallest(results: ExperimentResults) -> list[str]:
    slo = results.plan["slo"]
    target = results.plan["target"]
    offered = (
        f"{target['users']} users with {target['think_time']} s think time"
        if target["model"] == "closed"
        else f"{target['arrival_rate']} requests/s (open model)"
    )
    lines = [
        "## 1. The smallest deployment that meets the SLO",
        "",
        f"SLO: < {slo['error_ratio']:.0%} failed requests and P95 of successful requests "
        f"< {slo['p95_seconds']:g} s, as the client (Locust) saw them, at the target load: "
        f"{offered}.",
        "",
    ]
    rows = []
    for c in results.configs:
        verdict = "-" if c.meets_slo is None else ("meets" if c.meets_slo else "misses")
        rows.append(
            [
                c.label,
                _shape(c),
                _num(_mean_rps(c), 1),
                _pct(_worst(c, "error_ratio")),
                _ms(_worst(c, "p95_success_s")),
                _ms(_worst(c, "p99_s")),
                verdict,
                "yes" if trusted(c) else "no (see flags)",
            ]
        )
    columns = ["config", "deployment", "#client RPS", "#errors", "#P95 (successful)", "#P99 (all)"]
    lines += _table([*columns, "verdict", "trusted"], rows)
    meeting = [c for c in results.configs if c.meets_slo and trusted(c)]
    lines.append("")
    if meeting:
        best = min(meeting, key=lambda c: (_total_cpus(c), _total_gb(c), c.replicas))
        lines.append(
            f"**Answer: {best.label}** ({_shape(best)}; {_num(_total_cpus(best), 1)} CPU and "
            f"{_num(_total_gb(best), 2)} GB in all) is the smallest deployment measured that "
            f"meets the SLO: {_pct(_worst(best, 'error_ratio'))} errors, "
            f"P95 {_ms(_worst(best, 'p95_success_s'))}."
        )
        ties = [
            c
            for c in meeting
            if c is not best
            and (_total_cpus(c), _total_gb(c)) == (_total_cpus(best), _total_gb(best))
        ]
        for tie in ties:
            lines.append(
                f"{tie.label} uses as much in all and meets it too (P95 "
                f"{_ms(_worst(tie, 'p95_success_s'))}); fewer replicas break the tie, more "
                "replicas would add failover (question 4)."
            )
    else:
        lines.append(
            "**Answer: none of the measured deployments meets the SLO with a trusted result.** "
            "Add larger deployments to the experiments file, or lower the target load."
        )
    return lines


def sustainable(config: ConfigResult) -> tuple[float | None, str]:
    """The deployment's sustainable RPS and where it comes from."""
    if config.steps:
        if config.knee_rps is None:
            return None, f"below the lowest rate tried ({min(s.rate for s in config.steps):g}/s)"
        if config.knee_upper_rps is None:
            return config.knee_rps, "capacity search: a lower bound (no rate tried failed)"
        return config.knee_rps, f"capacity search (fails at {config.knee_upper_rps:g}/s)"
    return _mean_rps(config), "target load (a lower bound)"


def exact_knee(config: ConfigResult) -> float | None:
    """The knee when it is bracketed (a sustained rate below a failing one), else None."""
    return config.knee_rps if config.knee_upper_rps is not None else None


def _knee_text(config: ConfigResult) -> str:
    if config.knee_rps is None:
        return "-"
    prefix = "" if config.knee_upper_rps is not None else ">= "
    return f"{prefix}{config.knee_rps:,.0f}"


def _resources(results: ExperimentResults) -> list[str]:
    lines = [
        "## 2. Do replicas reduce the resources needed?",
        "",
        "Throughput per allocated resource, from each deployment's sustainable rate "
        "(question 3; the target load's RPS when no capacity search ran):",
        "",
    ]
    per_core: dict[str, float] = {}
    rows = []
    for c in results.configs:
        rps, source = sustainable(c)
        cores, gb = _total_cpus(c), _total_gb(c)
        rps_core = rps / cores if rps and math.isfinite(cores) else None
        rps_gb = rps / gb if rps and math.isfinite(gb) else None
        # Only bracketed knees enter the comparisons: a lower bound would bias them.
        if rps_core and exact_knee(c) is not None:
            per_core[c.label] = rps_core
        cpu = _max(r.cpu_of_limit for m in c.target for r in m.replicas)
        memory = _max(r.memory_peak_bytes for m in c.target for r in m.replicas)
        rows.append(
            [
                c.label,
                _num(cores, 1),
                _num(gb, 2),
                _num(rps, 0),
                source,
                _num(rps_core, 1),
                _num(rps_gb, 1),
                _pct(cpu),
                "-" if memory is None else format_memory(int(memory // 2**20) * 2**20),
            ]
        )
    columns = ["config", "#CPU in all", "#GB in all", "#sustainable RPS", "from", "#RPS per core"]
    columns += ["#RPS per GB", "#peak CPU of limit", "#peak memory per replica"]
    lines += _table(columns, rows)
    lines.append("")
    lines += _scaling_statements(results.configs, per_core)
    return lines


def _scaling_statements(configs: list[ConfigResult], per_core: dict[str, float]) -> list[str]:
    """Compare deployments that differ in one way only: more replicas of the same size
    (scaling efficiency), or the same total CPU split into more replicas. The answer
    follows from the measured CPU per request of those pairs."""
    statements: list[str] = []
    ratios: list[float] = []
    by_limits: dict[tuple[float | None, int | None], list[ConfigResult]] = {}
    for c in configs:
        by_limits.setdefault((c.cpus, c.memory), []).append(c)
    for group in by_limits.values():
        single = next((c for c in group if c.replicas == 1), None)
        base = exact_knee(single) if single else None
        for c in group:
            rps = exact_knee(c)
            if single is None or c is single or not base or not rps:
                continue
            efficiency = rps / (c.replicas * base)
            ratios.append(efficiency)
            statements.append(
                f"- {c.label} sustains {rps:,.0f} RPS against {c.replicas} x {base:,.0f} for "
                f"{single.label}: scaling efficiency {efficiency:.0%}."
            )
    for a in configs:
        for b in configs:
            same_cpu = math.isfinite(_total_cpus(a)) and _total_cpus(a) == _total_cpus(b)
            if a.replicas > b.replicas and same_cpu and a.label in per_core and b.label in per_core:
                ratio = per_core[a.label] / per_core[b.label]
                ratios.append(ratio)
                statements.append(
                    f"- Same {_total_cpus(a):g} CPU in all: {a.label} serves "
                    f"{per_core[a.label]:,.1f} RPS per core, {b.label} {per_core[b.label]:,.1f} "
                    f"({ratio:.0%})."
                )
    if not ratios:
        paired = any(len(group) > 1 for group in by_limits.values())
        reason = (
            "the comparable deployments have no bracketed knee (a sustained rate below a "
            "failing one); widen the capacity rates"
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
    mean = sum(ratios) / len(ratios)
    if 0.9 <= mean <= 1.1:
        answer = (
            f"no. Measured CPU per request is the same within 10 % (mean ratio {mean:.0%}): "
            "replicas add throughput in proportion to the CPU they bring, and availability, "
            "but a given load needs the same CPU and more memory"
        )
    elif mean > 1.1:
        answer = (
            f"yes, here: more, smaller replicas served {mean - 1:.0%} more requests per core "
            "on average, at the cost of one model copy in memory per replica"
        )
    else:
        answer = (
            f"no, they cost more: more replicas served {1 - mean:.0%} fewer requests per core "
            "on average, and each holds its own model in memory"
        )
    statements.append(f"**Answer:** {answer}.")
    return statements


def _capacity(results: ExperimentResults) -> list[str]:
    lines = ["## 3. Maximum sustainable RPS", ""]
    if not any(c.steps for c in results.configs):
        lines.append(
            "No capacity search ran (no `capacity` section in the experiments file, or "
            "`make capacity` not run). The target runs' RPS is the offered load, not a maximum."
        )
        return lines
    lines += [
        "Open model: the load generator starts tasks as a Poisson process of the offered "
        "rate, whatever the latency, stepping the rate up; a step is sustained when the "
        "client completes at least 95 % of the tasks offered in it and meets the SLO. The "
        "knee is the highest such step. (Achieved counts every request; errors and P95 are "
        "those of predictions.)",
        "",
    ]
    rows = []
    for c in results.configs:
        failing = min((s for s in c.steps if not s.ok), key=lambda s: s.rate, default=None)
        detail = "-"
        if failing is not None:
            client = failing.measurement.layers["client"]
            detail = (
                f"{_num(client.rps, 1)} RPS, {_pct(client.error_ratio)}, "
                f"{_ms(client.p95_success_s)}"
            )
        first = "none: add higher rates" if failing is None else f"{failing.rate:g}/s"
        rows.append([c.label, _knee_text(c), first, detail])
    lines += _table(
        ["config", "#knee (RPS)", "#first failing step", "at that step: achieved, errors, P95"],
        rows,
    )
    lines.append("")
    for c in results.configs:
        if not c.steps:
            continue
        lines += [f"Steps of {c.label}:", ""]
        rows = []
        for step in sorted(c.steps, key=lambda s: s.rate):
            client = step.measurement.layers["client"]
            cpu = _max(r.cpu_of_limit for r in step.measurement.replicas)
            outcome = "sustained" if step.ok else "not sustained"
            if not step.passed:
                outcome = "missed SLO"
            if step.refined:
                outcome += " (bisection)"
            rows.append(
                [
                    f"{step.rate:g}",
                    _num(step.measurement.client_all_rps, 1),
                    _pct(client.error_ratio),
                    _ms(client.p95_success_s),
                    _ms(client.p99_s),
                    _pct(cpu),
                    outcome,
                ]
            )
        columns = ["#offered", "#achieved", "#errors", "#P95 (successful)", "#P99"]
        lines += _table([*columns, "#CPU of limit (max)", "result"], rows)
        lines.append("")
    lines.append("![capacity](knee.png)")
    return lines


def _one_vs_several(results: ExperimentResults) -> list[str]:
    lines = ["## 4. One instance against several", ""]
    singles = [c for c in results.configs if c.replicas == 1]
    multis = [c for c in results.configs if c.replicas > 1]
    rows = []
    for c in results.configs:
        f = c.failover or {}
        back = f.get("recovered_after_s")
        rows.append(
            [
                c.label,
                str(c.replicas),
                _pct(_worst(c, "error_ratio")),
                _ms(_worst(c, "p95_success_s")),
                _ms(_worst(c, "p99_s")),
                str(f.get("killed", f.get("skipped", "-"))),
                _num(f.get("failures")),
                _pct(f.get("error_ratio")),
                "-" if back is None else f"{back:.1f} s",
            ]
        )
    columns = ["config", "#replicas", "#errors at target", "#P95", "#P99", "failover: killed"]
    lines += _table([*columns, "#failed requests", "#error ratio", "#back after"], rows)
    lines.append("")
    fail_single = [
        c.failover["error_ratio"]
        for c in singles
        if c.failover and c.failover.get("error_ratio") is not None
    ]
    fail_multi = [
        c.failover["error_ratio"]
        for c in multis
        if c.failover and c.failover.get("error_ratio") is not None
    ]
    p99_single = [_worst(c, "p99_s") for c in singles if _worst(c, "p99_s") is not None]
    p99_multi = [_worst(c, "p99_s") for c in multis if _worst(c, "p99_s") is not None]
    if fail_single and fail_multi:
        lines.append(
            f"- Losing its replica, a single instance failed {_pct(max(fail_single))} of "
            "requests in the failover run (every request until the restart); several replicas "
            f"failed at most {_pct(max(fail_multi))} (only requests in flight on the killed one)."
        )
    if p99_single and p99_multi:
        lines.append(
            f"- Tail latency at the target load: P99 {_span(p99_single)} with one instance, "
            f"{_span(p99_multi)} with several."
        )
    if not (singles and multis):
        lines.append("**Answer:** the plan needs both single- and multi-replica deployments.")
    elif fail_single and fail_multi and max(fail_multi) < max(fail_single):
        lines.append(
            "**Answer:** one instance is a single point of failure: its crash failed "
            f"{_pct(max(fail_single))} of requests until the restart, while several replicas "
            f"kept serving ({_pct(max(fail_multi))} failed). They also spread the queueing, "
            "at the cost of the memory each copy holds."
        )
    else:
        lines.append(
            "**Answer:** in these runs several replicas did not fail fewer requests than one "
            "when one instance was lost; see the failover columns and the flags."
        )
    return lines


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return _ms(low) if low == high else f"{_ms(low)} to {_ms(high)}"


def _flags(results: ExperimentResults) -> list[str]:
    lines = ["## Results that cannot be fully trusted", ""]
    any_flag = False
    for c in results.configs:
        for flag in c.flags + c.capacity_flags:
            lines.append(f"- {c.label}: {flag}")
            any_flag = True
    if not any_flag:
        lines.append("No flag was raised.")
    return lines


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --------------------------------------------------------------------- plots


def _plot_slo(results: ExperimentResults, path: Path) -> None:
    configs = results.configs
    labels = [c.label for c in configs]
    slo = results.plan["slo"]
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(labels, [_mean_rps(c) or 0 for c in configs], color="#4C72B0")
    axes[0].set_title("client RPS at the target load")
    axes[1].bar(labels, [100 * (_worst(c, "error_ratio") or 0) for c in configs], color="#DD8452")
    axes[1].axhline(100 * slo["error_ratio"], color="red", linestyle="--", label="SLO")
    axes[1].set_title("errors (%)")
    axes[2].bar(labels, [_worst(c, "p95_success_s") or 0 for c in configs], color="#55A868")
    axes[2].axhline(slo["p95_seconds"], color="red", linestyle="--", label="SLO")
    axes[2].set_title("P95 of successful requests (s)")
    for axis in axes:
        axis.tick_params(axis="x", rotation=30)
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_cpu(results: ExperimentResults, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(10, 4))
    position = 0.0
    ticks, names = [], []
    for c in results.configs:
        replicas = c.target[-1].replicas if c.target else []
        for r in replicas:
            axis.bar(position, 100 * (r.cpu_of_limit or 0), color="#4C72B0")
            ticks.append(position)
            names.append(f"{c.label}\n{r.replica}")
            position += 1
        position += 0.8
    axis.axhline(100, color="red", linestyle="--", label="limit")
    axis.set_xticks(ticks, names, fontsize=7)
    axis.set_ylabel("CPU, % of the replica's limit")
    axis.set_title("per-replica CPU at the target load")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_knee(results: ExperimentResults, path: Path) -> None:
    figure, (rps_axis, p95_axis) = plt.subplots(1, 2, figsize=(12, 4))
    for c in results.configs:
        if not c.steps:
            continue
        steps = sorted(c.steps, key=lambda s: s.rate)
        offered = [s.rate for s in steps]
        rps_axis.plot(
            offered,
            [s.measurement.client_all_rps or 0 for s in steps],
            marker="o",
            label=c.label,
        )
        p95_axis.plot(
            offered,
            [s.measurement.layers["client"].p95_success_s or 0 for s in steps],
            marker="o",
            label=c.label,
        )
    top = max((s.rate for c in results.configs for s in c.steps), default=1)
    rps_axis.plot([0, top], [0, top], color="grey", linestyle=":", label="achieved = offered")
    rps_axis.set_xlabel("offered requests/s")
    rps_axis.set_ylabel("achieved requests/s")
    rps_axis.set_title("capacity: achieved against offered")
    p95_axis.axhline(results.plan["slo"]["p95_seconds"], color="red", linestyle="--", label="SLO")
    p95_axis.set_xlabel("offered requests/s")
    p95_axis.set_ylabel("P95 of successful requests (s)")
    p95_axis.set_yscale("log")
    p95_axis.set_title("latency as load rises")
    rps_axis.legend(fontsize=8)
    p95_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -------------------------------------------------------------------- report


def write_report(results: ExperimentResults, directory: Path) -> Path:
    machine = results.machine
    status = {"complete": "", "running": " (in progress)", "interrupted": " (interrupted: partial)"}
    lines = [
        f"# Capacity report: {results.name}{status.get(results.status, '')}",
        "",
        f"{results.plan.get('description', '').strip()}",
        "",
        f"Runtime: {results.runtime}. Machine: {machine.get('cpu_model', '?')}, "
        f"{machine.get('cpus', '?')} CPUs, {machine.get('memory_gb', '?')} GB, kernel "
        f"{machine.get('kernel', '?')}; limits {machine.get('limits', '?')}. Service: engine "
        f"{results.plan['service']['engine']}, batching {results.plan['service']['batching']}.",
        "",
    ]
    if results.configs:
        _plot_slo(results, directory / "slo.png")
        _plot_cpu(results, directory / "cpu.png")
        lines += [*_smallest(results), "", "![SLO per config](slo.png)", ""]
        lines += [*_resources(results), "", "![per-replica CPU](cpu.png)", ""]
        if any(c.steps for c in results.configs):
            _plot_knee(results, directory / "knee.png")
        lines += [*_capacity(results), ""]
        lines += [*_one_vs_several(results), ""]
        lines += [*_flags(results), ""]
    else:
        lines.append("No deployment was measured yet.")
    lines += ["## Errors by origin at the target load", ""]
    rows = []
    for c in results.configs:
        origins = [m.errors_by_origin for m in c.target]
        worst = {k: _max(o.get(k) for o in origins) for k in ("app", "proxy", "client")}
        rows.append([c.label, _pct(worst["app"]), _pct(worst["proxy"]), _pct(worst["client"])])
    columns = ["config", "#app-born (5xx from a replica)", "#proxy-born (5xx from Traefik)"]
    lines += _table([*columns, "#client-born (timeouts, refused, 4xx)"], rows)
    lines += ["", "Files: results.json (everything), results.csv (a row per target window).", ""]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path
