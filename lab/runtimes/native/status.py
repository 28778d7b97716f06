"""`make status` (and the workshop's `make stats`): every component, every replica."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil
from rich.console import Console
from rich.table import Table

from lab.core import format_cpus, format_memory
from lab.runtimes.native import cgroups
from lab.runtimes.native.backoff import POLICY
from lab.runtimes.native.processes import http_ok
from lab.runtimes.native.stack import NativeStack
from lab.runtimes.native.state import Component, Replica, State

HEALTH_PATHS = {
    "traefik": "/ping",
    "prometheus": "/-/healthy",
    "pushgateway": "/-/healthy",
    "supervisor": "/metrics",
    "dashboards": "/-/ready",
}


@dataclass
class ReplicaUsage:
    cpu_percent: float | None
    rss: int | None


def sample_usage(state: State, seconds: float = 0.5) -> dict[str, ReplicaUsage]:
    """CPU % (of one core) over `seconds`, and RSS, of every live replica."""
    handles = {r.name: r.proc.handle() for r in state.replicas}
    for handle in handles.values():
        if handle is not None:
            handle.cpu_percent(None)
    time.sleep(seconds)
    usage = {}
    for name, handle in handles.items():
        try:
            usage[name] = (
                ReplicaUsage(handle.cpu_percent(None), handle.memory_info().rss)
                if handle is not None
                else ReplicaUsage(None, None)
            )
        except psutil.Error:
            usage[name] = ReplicaUsage(None, None)
    return usage


def _age(since: float) -> str:
    seconds = int(time.time() - since)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def supervision(item: Component | Replica, now: float) -> str:
    """The supervisor's view of one process: crash loop, pending restart, or "-"."""
    parts = []
    if POLICY.crash_looping(item.failures):
        parts.append(f"[red]CRASH LOOP[/red] ({item.failures} failures in a row)")
    if item.status == "crashed":
        parts.append(f"restart in {max(0.0, item.next_try - now):.0f} s")
    elif item.status == "dead":
        parts.append("left down (LAB_RESTART=no)")
    elif item.status == "starting" and item.restarts:
        parts.append("restarting, not ready yet")
    return ", ".join(parts) or "-"


def render(stack: NativeStack, state: State, console: Console) -> None:
    s = stack.settings
    limits = (
        f"limits enforced by {state.cgroup_mode} cgroups"
        if state.cgroup_mode != "off"
        else f"NO limits enforced ({state.cgroup_note})"
    )
    header = f"[bold]native stack[/bold]  config [bold]{state.label}[/bold]"
    console.print(f"{header}  up {_age(state.started_at)}  {limits}", highlight=False)
    now = time.time()
    looping = [
        item.name
        for item in [*state.components.values(), *state.replicas]
        if POLICY.crash_looping(item.failures)
    ]
    if looping:
        console.print(
            f"[red]crash loop: {', '.join(looping)}[/red] (restarted with backoff; "
            f"the reason is in last exit, {stack.files.root / 'events.log'} and their logs)",
            highlight=False,
        )
    components = Table(
        "component", "pid", "address", "health", "restarts", "last exit", "supervision", box=None
    )
    for name, component in state.components.items():
        alive = component.proc.alive()
        address = s.url(component.port) if component.port else "-"
        if name == "supervisor":
            health = "running" if alive else "[red]not running[/red]"
        else:
            healthy = alive and http_ok(f"{address}{HEALTH_PATHS.get(name, '/')}")
            health = "ok" if healthy else "[red]down[/red]"
        components.add_row(
            name,
            str(component.proc.pid),
            address,
            health,
            str(component.restarts),
            component.last_exit or "-",
            "-" if name == "supervisor" else supervision(component, now),
        )
    console.print(components)

    usage = sample_usage(state)
    replicas = Table(
        "replica",
        "pid",
        "port",
        "state",
        "cpu limit",
        "mem limit",
        "cpu %",
        "cpu % of limit",
        "rss",
        "restarts",
        "last exit",
        "supervision",
        box=None,
    )
    for replica in state.replicas:
        ready = replica.proc.alive() and http_ok(f"{s.url(replica.port)}/ready")
        shown = "ready" if ready and replica.status == "running" else replica.status
        if replica.cgroup:
            cpus, memory = cgroups.read_limits(replica.cgroup)
        else:
            cpus, memory = None, None
        use = usage.get(replica.name, ReplicaUsage(None, None))
        cpu = "-" if use.cpu_percent is None else f"{use.cpu_percent:.0f}%"
        of_limit = (
            "-" if use.cpu_percent is None or cpus is None else f"{use.cpu_percent / cpus:.0f}%"
        )
        rss = "-" if use.rss is None else format_memory(use.rss // (1024 * 1024) * 1024 * 1024)
        replicas.add_row(
            replica.name,
            str(replica.proc.pid),
            str(replica.port),
            shown if shown == "ready" else f"[yellow]{shown}[/yellow]",
            "unlimited" if cpus is None else format_cpus(cpus),
            "unlimited" if memory is None else format_memory(memory),
            cpu,
            of_limit,
            rss,
            str(replica.restarts),
            replica.last_exit or "-",
            supervision(replica, now),
        )
    console.print(replicas)
    console.print(
        f"API {s.url(s.web_port)}  Traefik dashboard {s.url(s.traefik_port)}/dashboard/  "
        f"Prometheus {s.url(s.prometheus_port)}  Pushgateway {s.url(s.pushgateway_port)}  "
        f"dashboards {s.url(state.ports.get('dashboards', s.dashboard_port))}/  "
        f"logs {stack.files.logs}/",
        highlight=False,
    )
