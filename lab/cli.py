"""`python -m lab up|scale|status|logs|down|demo|load|experiment|capacity|report|label|trace|watch`.

The lab's one command line: the Makefile's targets call it once each. The runtime is
chosen once per command from RUNTIME=auto|docker|native|k8s (auto: docker when `docker info`
answers, else native), then every verb goes through the runtime contract
(lab/runtimes/contract.py). Every failure ends in one `lab: ...` line on stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lab.core import Deployment
from lab.errors import LabError, reports_errors
from lab.runtimes.contract import LoadOptions, Runtime
from lab.runtimes.select import select_runtime


class CliSettings(BaseSettings):
    """RUNTIME, as the Makefile passes it."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    # auto | docker | native; checked when the runtime is selected.
    runtime: str = Field(default="auto", validation_alias="RUNTIME")


class Parser(argparse.ArgumentParser):
    """argparse whose errors are the lab's one-line messages, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise LabError(f"{message} (`python -m lab --help` lists the commands and options)")


def parser() -> Parser:
    root = Parser(prog="python -m lab", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("up", help="start the stack with REPLICAS, CPUS and MEMORY")
    scale = sub.add_parser("scale", help="change replicas and limits live; what is not given stays")
    scale.add_argument("--replicas", help="replica count (REPLICAS)")
    scale.add_argument("--cpus", help="CPUs per replica, e.g. 0.5 (CPUS)")
    scale.add_argument("--memory", help="memory per replica, e.g. 512m (MEMORY)")
    sub.add_parser("status", help="components and replicas: health, limits, CPU and memory")
    sub.add_parser("logs", help="follow every component's log")
    sub.add_parser("down", help="stop everything the stack started")
    sub.add_parser("demo", help="start if needed, send predictions, show where to look")
    sub.add_parser("label", help="print the running deployment's config label")
    load = sub.add_parser("load", help="Locust against the running stack (web UI or headless)")
    load.add_argument("--workers", type=int, default=1, help="Locust processes (WORKERS)")
    load.add_argument("--users", type=int, default=50, help="simulated users (USERS)")
    load.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    load.add_argument("--shape", default="ramp", help="ramp | steps | spike | open (SHAPE)")
    load.add_argument("--arrival-rate", type=float, default=0, help="open shape: requests/s")
    load.add_argument("--headless", action="store_true", help="no web UI; ends after run time")
    load.add_argument("--run-time", default="60s", help="headless run length (DURATION)")
    experiment = sub.add_parser("experiment", help="measure every deployment of FILE")
    experiment.add_argument("--file", type=Path, help="the plan (default FILE)")
    capacity = sub.add_parser(
        "capacity",
        help="capacity search of one config, or the smallest deployment for a target rate",
    )
    which = capacity.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="a config label, e.g. r2-c1.0-m1g: its capacity search")
    which.add_argument(
        "--target-rps",
        type=float,
        help="fit a capacity model to stored knees, run its smallest deployment once",
    )
    capacity.add_argument("--file", type=Path, help="the plan, with --config (default FILE)")
    capacity.add_argument(
        "--results",
        type=Path,
        default=Path("experiments/example"),
        help="with --target-rps: a results folder whose knees the model is fitted on",
    )
    report = sub.add_parser("report", help="rebuild report.md and plots from stored results")
    report.add_argument("--run", type=Path, required=True, help="a results/<...> folder")
    watch = sub.add_parser("watch", help="live terminal table of the SLO numbers (Ctrl-C ends)")
    watch.add_argument("--once", action="store_true", help="print one frame and exit")
    watch.add_argument(
        "--interval", type=float, help="seconds between frames (default: the scrape interval)"
    )
    trace = sub.add_parser("trace", help="print a stored trace's span tree (native runtime)")
    trace.add_argument("trace_id", help="32 hex digits, e.g. an exemplar's trace_id")
    trace.add_argument("--dir", type=Path, help="span files (default <LAB_RUN_DIR>/traces)")
    return root


def _up(runtime: Runtime, _: argparse.Namespace) -> int:
    deployment = runtime.configured()
    runtime.up(deployment)
    print(f"{runtime.title} up: {deployment.label}, API on {runtime.endpoints().api}")
    runtime.status()
    return 0


def _scale(runtime: Runtime, args: argparse.Namespace) -> int:
    # A bad value is named before anything else is looked at, stack up or down.
    Deployment.parse(args.replicas or 1, args.cpus, args.memory)
    # What is not given keeps its current value: `make scale CPUS=0.5` keeps the replicas.
    deployment = runtime.require_running().with_changes(args.replicas, args.cpus, args.memory)
    runtime.scale(deployment)
    print(f"scaled to {deployment.label}")
    runtime.status()
    return 0


def _status(runtime: Runtime, _: argparse.Namespace) -> int:
    runtime.status()
    return 0


def _logs(runtime: Runtime, _: argparse.Namespace) -> int:
    return runtime.logs()


def _down(runtime: Runtime, _: argparse.Namespace) -> int:
    print(runtime.down())
    return 0


def _demo(runtime: Runtime, _: argparse.Namespace) -> int:
    runtime.demo()
    return 0


def _label(runtime: Runtime, _: argparse.Namespace) -> int:
    print(runtime.label())
    return 0


def _load(runtime: Runtime, args: argparse.Namespace) -> int:
    options = LoadOptions(
        workers=args.workers,
        users=args.users,
        spawn_rate=args.spawn_rate,
        headless=args.headless,
        run_time=args.run_time,
        shape=args.shape,
        arrival_rate=args.arrival_rate,
    )
    return runtime.load(options)


def _experiment(runtime: Runtime, args: argparse.Namespace) -> int:
    from lab.experiments.commands import run_experiment

    run_experiment(runtime, args.file)
    return 0


def _capacity(runtime: Runtime, args: argparse.Namespace) -> int:
    from lab.experiments.commands import run_experiment, verify_prediction

    if args.target_rps is not None:
        if args.target_rps <= 0:
            raise LabError(f"--target-rps {args.target_rps:g}: give a positive rate")
        verify_prediction(runtime, args.target_rps, args.results)
    else:
        run_experiment(runtime, args.file, capacity_of=args.config)
    return 0


def _watch(runtime: Runtime, args: argparse.Namespace) -> int:
    from lab.watch import watch
    from monitoring.prom import Prometheus

    endpoints = runtime.endpoints()
    interval = endpoints.scrape_interval_seconds if args.interval is None else args.interval
    if interval <= 0:
        raise LabError(f"--interval must be a positive number of seconds, not {interval:g}")
    watch(Prometheus(endpoints.prometheus), interval, once=args.once)
    return 0


VERBS: dict[str, Callable[[Runtime, argparse.Namespace], int]] = {
    "up": _up,
    "scale": _scale,
    "status": _status,
    "logs": _logs,
    "down": _down,
    "demo": _demo,
    "label": _label,
    "load": _load,
    "experiment": _experiment,
    "capacity": _capacity,
    "watch": _watch,
}


@reports_errors("lab")
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "report":
        # Reads stored results only: no runtime is involved.
        from lab.experiments.commands import rebuild_report

        rebuild_report(args.run)
        return
    if args.command == "trace":
        # Reads the native runtime's span files only: no runtime is involved.
        from lab.traces import show_trace

        print(show_trace(args.trace_id, args.dir))
        return
    quiet = args.command in ("experiment", "capacity")
    runtime = select_runtime(CliSettings().runtime, quiet=quiet)
    runtime.ensure_available()
    code = VERBS[args.command](runtime, args)
    if code:
        raise SystemExit(code)
