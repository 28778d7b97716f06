"""What `python -m lab experiment|capacity|report` do (lab/cli.py parses the arguments)."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from lab.core import REPO, Deployment
from lab.errors import LabError
from lab.experiments.plan import load_experiment
from lab.experiments.report import write_report
from lab.experiments.results import RESULTS_JSON, load
from lab.experiments.runner import ExperimentRunner
from lab.machine import machine_facts
from lab.runtimes.contract import Runtime


class ExperimentSettings(BaseSettings):
    """FILE and RESULTS_DIR, as the Makefile passes them."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    file: Path = Field(default=REPO / "experiments" / "default.yml", validation_alias="FILE")
    results_dir: Path = Field(default=REPO / "results", validation_alias="RESULTS_DIR")


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
        if experiment.capacity is None:
            raise LabError(f"{plan_file} has no `capacity` section to run")
        only = [Deployment.from_label(capacity_of)]
    name = experiment.name if capacity_of is None else f"capacity-{capacity_of}"
    out_dir = _out_dir(settings, name)
    facts = machine_facts(runtime.limits_description())
    runner = ExperimentRunner(experiment, runtime, out_dir, facts, console)
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
