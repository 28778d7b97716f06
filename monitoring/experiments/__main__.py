"""`python -m monitoring.experiments run|capacity|report` (the Makefile calls these)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from api.resources import Deployment
from monitoring.errors import LabError, reports_errors
from monitoring.experiments.plan import load_experiment
from monitoring.experiments.report import write_report
from monitoring.experiments.results import RESULTS_JSON, load
from monitoring.experiments.runner import ExperimentRunner
from monitoring.machine import machine_facts
from monitoring.native.settings import REPO
from monitoring.runtime import select_runtime


class ExperimentSettings(BaseSettings):
    """FILE, RUNTIME and RESULTS_DIR, as the Makefile passes them."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    file: Path = Field(default=REPO / "experiments" / "default.yml", validation_alias="FILE")
    runtime: str = Field(default="auto", validation_alias="RUNTIME")
    results_dir: Path = Field(default=REPO / "results", validation_alias="RESULTS_DIR")


def _out_dir(settings: ExperimentSettings, name: str) -> Path:
    return settings.results_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"


@reports_errors("experiment")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure every deployment of the experiments file")
    run.add_argument("--file", type=Path)
    capacity = sub.add_parser("capacity", help="capacity search (open-model steps) for one config")
    capacity.add_argument("--config", required=True, help="a config label, e.g. r2-c1.0-m1g")
    capacity.add_argument("--file", type=Path)
    report = sub.add_parser("report", help="rebuild report.md and plots from stored results")
    report.add_argument("--run", type=Path, required=True, help="a results/<...> folder")
    args = parser.parse_args(argv)
    settings = ExperimentSettings()
    console = Console()

    if args.command == "report":
        folder = args.run if args.run.is_absolute() else Path.cwd() / args.run
        if not (folder / RESULTS_JSON).is_file():
            raise LabError(
                f"{folder} holds no {RESULTS_JSON}; pass a folder made by `make experiment`"
            )
        path = write_report(load(folder), folder)
        console.print(f"report rebuilt: {path}")
        return

    experiment = load_experiment(args.file or settings.file)
    runtime = select_runtime(settings.runtime)
    only = None
    capacity_only = False
    if args.command == "capacity":
        if experiment.capacity is None:
            raise LabError(f"{args.file or settings.file} has no `capacity` section to run")
        only = [Deployment.from_label(args.config)]
        capacity_only = True
    out_dir = _out_dir(settings, experiment.name if only is None else f"capacity-{args.config}")
    limits = "cgroups" if runtime.name == "docker" else _native_limits(runtime)
    runner = ExperimentRunner(experiment, runtime, out_dir, machine_facts(limits), console)
    console.print(
        f"experiment {experiment.name} on the {runtime.name} runtime; results in {out_dir}"
    )
    runner.run(only=only, capacity_only=capacity_only)
    console.print(f"done: {out_dir / 'report.md'}")


def _native_limits(runtime: object) -> str:
    state = runtime.stack.state() if hasattr(runtime, "stack") else None  # type: ignore[attr-defined]
    if state is None:
        return "cgroups if writable (decided at start)"
    return (
        f"{state.cgroup_mode} cgroups"
        if state.cgroup_mode != "off"
        else f"none ({state.cgroup_note})"
    )


if __name__ == "__main__":
    main()
