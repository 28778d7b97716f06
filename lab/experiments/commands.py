"""What `python -m lab experiment|capacity|report` do (lab/cli.py parses the arguments)."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from lab.core import REPO, Deployment, ResourceError, format_cpus, format_memory
from lab.errors import LabError, one_line
from lab.experiments import predict
from lab.experiments.plan import Experiment, load_experiment
from lab.experiments.report import write_report
from lab.experiments.results import RESULTS_JSON, load
from lab.experiments.runner import ExperimentRunner
from lab.machine import machine_facts
from lab.runtimes.contract import Runtime


class ExperimentSettings(BaseSettings):
    """FILE and RESULTS_DIR, as the Makefile passes them, and the load generator's push
    interval (LAB_PUSH_INTERVAL_SECONDS)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    file: Path = Field(default=REPO / "experiments" / "default.yml", validation_alias="FILE")
    results_dir: Path = Field(default=REPO / "results", validation_alias="RESULTS_DIR")
    # Seconds between two pushes of Locust's stats; a capacity window spans at least 20
    # of them (1 s: windows of 20 s or more). Tests push faster to measure shorter windows.
    push_interval_s: float = Field(
        default=1.0, gt=0, le=10, validation_alias="LAB_PUSH_INTERVAL_SECONDS"
    )


def _out_dir(settings: ExperimentSettings, name: str) -> Path:
    return settings.results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def run_experiment(
    runtime: Runtime, file: Path | None = None, capacity_of: str | None = None
) -> Path:
    """Measure every deployment of the plan (or only the capacity of `capacity_of`, a
    config label); the folder holding the results and report.md."""
    settings = ExperimentSettings()
    console = Console()
    plan_file = file or settings.file
    experiment = load_experiment(plan_file)
    only = None
    if capacity_of is not None:
        try:
            only = [Deployment.from_label(capacity_of)]
        except ResourceError as exc:
            raise LabError(str(exc)) from None
    name = experiment.name if capacity_of is None else f"capacity-{capacity_of}"
    out_dir = _out_dir(settings, name)
    facts = machine_facts(runtime.limits_description())
    runner = ExperimentRunner(
        experiment, runtime, out_dir, facts, console, settings.push_interval_s
    )
    console.print(
        f"experiment {experiment.name} on the {runtime.name} runtime; results in {out_dir}"
    )
    runner.run(only=only, capacity_only=capacity_of is not None)
    console.print(f"done: {out_dir / 'report.md'}")
    return out_dir


def rebuild_report(run: Path) -> Path:
    """Write report.md and the plots again from a results folder's stored data."""
    folder = run if run.is_absolute() else Path.cwd() / run
    if not (folder / RESULTS_JSON).is_file():
        raise LabError(f"{folder} holds no {RESULTS_JSON}; pass a folder made by `make experiment`")
    path = write_report(load(folder), folder)
    Console().print(f"report rebuilt: {path}")
    return path


def verify_prediction(runtime: Runtime, target_rps: float, source: Path) -> Path:
    """Fit the capacity model to the knees stored in `source`, run its smallest
    deployment for `target_rps` once (open-model steps at the target and around the
    predicted knee), and write a report of predicted against measured."""
    folder = source if source.is_absolute() else Path.cwd() / source
    if not (folder / RESULTS_JSON).is_file():
        raise LabError(
            f"{folder} holds no {RESULTS_JSON}: pass --results a folder made by "
            "`make experiment` (with a capacity search)"
        )
    stored = load(folder)
    model = predict.fit(stored.configs)
    if model is None:
        raise LabError(
            f"{folder} has no bracketed, trusted knee of a CPU-limited deployment to fit a "
            "model to; run `make experiment` first"
        )
    try:
        choice = predict.smallest(model, target_rps)
    except ResourceError as exc:
        raise LabError(str(exc)) from None
    plan = dict(stored.plan)
    plan["name"] = f"capacity-{target_rps:g}rps"
    plan["description"] = (
        f"Predict, then verify: the smallest deployment for {target_rps:g} req/s by the "
        f"model fitted on {folder.name}, measured once."
    )
    plan["target"] = {"arrival_rate": target_rps}
    plan["workshop_view"] = None
    plan["failover"] = {**plan.get("failover", {}), "enabled": False}
    plan["capacity"] = {
        **plan["capacity"],
        "rates": predict.probe_rates(target_rps, choice.predicted_knee),
        "refine": 0,
    }
    label = choice.deployment.label
    plan["configs"] = [
        {
            "replicas": choice.deployment.replicas,
            "cpus": format_cpus(choice.deployment.cpus or 0),
            "memory": format_memory(choice.deployment.memory or 0),
        }
    ]
    try:
        experiment = Experiment.model_validate(plan)
    except ValidationError as exc:
        raise LabError(f"{folder}'s stored plan cannot be reused: {one_line(exc)}") from None
    settings = ExperimentSettings()
    console = Console()
    out_dir = _out_dir(settings, experiment.name)
    facts = machine_facts(runtime.limits_description())
    runner = ExperimentRunner(
        experiment, runtime, out_dir, facts, console, settings.push_interval_s
    )
    runner.results.prediction = {
        "source": folder.name,
        "target_rps": target_rps,
        "label": label,
        "predicted_knee": round(choice.predicted_knee, 1),
        "extrapolated": choice.extrapolated,
        "fit": model.to_dict(),
    }
    console.print(
        f"model {model.describe()}: the smallest deployment for {target_rps:g} req/s is "
        f"{label} (predicted knee {choice.predicted_knee:,.0f}); measuring it, results in "
        f"{out_dir}"
    )
    runner.run()
    console.print(f"done: {out_dir / 'report.md'}")
    return out_dir
