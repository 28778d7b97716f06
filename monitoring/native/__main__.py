"""`python -m monitoring.native up|scale|status|down|demo|supervise` (the Makefile calls these)."""

from __future__ import annotations

import argparse

from rich.console import Console

from api.resources import Deployment, format_cpus, format_memory
from monitoring.errors import LabError, reports_errors
from monitoring.native.demo import demo
from monitoring.native.settings import NativeSettings
from monitoring.native.stack import NativeStack, describe
from monitoring.native.state import State, StateError
from monitoring.native.status import render
from monitoring.native.supervisor import supervise


def format_cpus_arg(cpus: float | None) -> str:
    return "" if cpus is None else format_cpus(cpus)


def format_memory_arg(memory: int | None) -> str:
    return "" if memory is None else format_memory(memory)


def running_state(stack: NativeStack) -> State:
    """The running stack's state, or one message saying what is wrong and what to do."""
    try:
        state = stack.state()
    except StateError as exc:
        running = stack.still_running()
        alive = f" Still running from this run folder: {describe(running)}." if running else ""
        raise LabError(f"{exc}.{alive}") from None
    if state is None:
        running = stack.still_running()
        if running:
            raise LabError(
                f"there is no state.json, yet processes this run folder started are running "
                f"({describe(running)}); `make down` stops them, then `make up`"
            )
        raise LabError("the native stack is not running; start it with `make up`")
    return state


@reports_errors("lab")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m monitoring.native", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack (REPLICAS, CPUS, MEMORY)")
    scale = sub.add_parser("scale", help="change replicas and limits live")
    scale.add_argument("--replicas", type=int)
    scale.add_argument("--cpus")
    scale.add_argument("--memory")
    sub.add_parser("status", help="components and replicas, with CPU and memory")
    sub.add_parser("down", help="stop everything that was started")
    sub.add_parser("demo", help="start if needed, send predictions, show where to look")
    sub.add_parser("label", help="print the running deployment's config label")
    sub.add_parser("supervise", help="(internal) restart replicas and components that die")
    args = parser.parse_args(argv)

    settings = NativeSettings()
    console = Console(width=None if Console().is_terminal else 160)
    stack = NativeStack(settings)
    if args.command == "up":
        state = stack.up()
        console.print(f"native stack up: {state.label}, API on {settings.url(settings.web_port)}")
        render(stack, state, console)
    elif args.command == "scale":
        current = running_state(stack)
        # Limits not given keep their current values: `make scale REPLICAS=4` only adds.
        deployment = Deployment.parse(
            args.replicas or current.replicas_wanted,
            args.cpus if args.cpus is not None else format_cpus_arg(current.cpus),
            args.memory if args.memory is not None else format_memory_arg(current.memory),
        )
        state = stack.scale(deployment)
        console.print(f"scaled to {state.label}")
        render(stack, state, console)
    elif args.command == "status":
        running_state(stack)
        # A dead supervisor is reported and started again by every command that finds it.
        revived = stack.ensure_supervisor()
        if revived:
            console.print(f"[yellow]{revived}[/yellow]", highlight=False)
        render(stack, running_state(stack), console)
    elif args.command == "down":
        stopped = stack.down()
        console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")
    elif args.command == "demo":
        demo(settings)
    elif args.command == "label":
        state = stack.state()
        print(state.label if state else "unknown")
    elif args.command == "supervise":
        supervise(settings)


if __name__ == "__main__":
    main()
