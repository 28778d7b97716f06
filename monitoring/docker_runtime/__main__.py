"""`python -m monitoring.docker_runtime up|scale|status|down|label|logs|demo|load`
(the Makefile calls these with RUNTIME=docker)."""

from __future__ import annotations

import argparse

from api.resources import Deployment, format_cpus, format_memory
from monitoring.docker_runtime.compose import NOT_RUNNING
from monitoring.docker_runtime.demo import demo
from monitoring.docker_runtime.load import INTERRUPTED, LoadOptions, run_load
from monitoring.docker_runtime.runtime import DockerRuntime
from monitoring.docker_runtime.settings import WEB_PORT, DockerSettings
from monitoring.docker_runtime.status import render
from monitoring.errors import LabError, reports_errors


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.docker_runtime", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build and start the stack (REPLICAS, CPUS, MEMORY)")
    scale = sub.add_parser("scale", help="change replicas and limits, one replica at a time")
    scale.add_argument("--replicas", type=int)
    scale.add_argument("--cpus")
    scale.add_argument("--memory")
    sub.add_parser("status", help="services, and each replica's limits, CPU and memory")
    sub.add_parser("down", help="stop and remove the containers (volumes stay)")
    sub.add_parser("label", help="print the running deployment's config label")
    sub.add_parser("logs", help="follow every container's log")
    sub.add_parser("demo", help="start if needed, send predictions, show where to look")
    load = sub.add_parser("load", help="Locust master and workers against Traefik")
    load.add_argument("--workers", type=int, default=1)
    load.add_argument("--users", type=int, default=50)
    load.add_argument("--spawn-rate", type=float, default=10)
    load.add_argument("--headless", action="store_true")
    load.add_argument("--run-time", default="60s")
    return parser


@reports_errors("lab")
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = DockerSettings()
    runtime = DockerRuntime(settings)
    runtime.compose.require_engine()
    if args.command == "up":
        deployment = settings.deployment()
        runtime.up(deployment)
        print(f"Docker stack up: {deployment.label}, API on {settings.url(WEB_PORT)}")
        render(runtime.compose)
    elif args.command == "scale":
        current = runtime.current()
        if current is None:
            raise LabError(NOT_RUNNING)
        # Limits not given keep their current values: `make scale REPLICAS=4` only adds.
        deployment = Deployment.parse(
            args.replicas or current.replicas,
            args.cpus if args.cpus is not None else _cpus(current.cpus),
            args.memory if args.memory is not None else _memory(current.memory),
        )
        runtime.scale(deployment)
        print(f"scaled to {deployment.label}")
        render(runtime.compose)
    elif args.command == "status":
        render(runtime.compose)
    elif args.command == "down":
        runtime.down()
        print("Docker stack stopped; its volumes (Prometheus, Grafana, Tempo data) are kept")
    elif args.command == "label":
        print(runtime.label())
    elif args.command == "logs":
        code = runtime.compose.stream(["logs", "--follow", "--tail", "20"], profiles=["load"])
        if code not in (0, INTERRUPTED):
            raise SystemExit(code)
    elif args.command == "demo":
        demo(runtime)
    elif args.command == "load":
        options = LoadOptions(
            workers=args.workers,
            users=args.users,
            spawn_rate=args.spawn_rate,
            headless=args.headless,
            run_time=args.run_time,
        )
        code = run_load(runtime, options)
        if code:
            raise SystemExit(code)


def _cpus(cpus: float | None) -> str:
    return "" if cpus is None else format_cpus(cpus)


def _memory(memory: int | None) -> str:
    return "" if memory is None else format_memory(memory)


if __name__ == "__main__":
    main()
