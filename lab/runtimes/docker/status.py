"""`make status` (and `make stats`) for the Docker stack: services, then each replica's
limits, health, CPU and memory as `docker stats` reports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.core import format_cpus
from lab.errors import LabError
from lab.runtimes.docker.compose import NOT_RUNNING, Compose
from lab.runtimes.docker.settings import SERVICE


def _percent(value: Any) -> float | None:
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(compose: Compose, write: Callable[[str], None] = print) -> None:
    replicas = compose.replicas()
    if not replicas:
        raise LabError(NOT_RUNNING)
    services = [["service", "state", "health", "ports"]]
    for row in sorted(compose.services(), key=lambda r: (r.get("Service", ""), r.get("Name", ""))):
        if row.get("Service") == SERVICE:
            continue
        services.append(
            [
                str(row.get("Service", "")),
                str(row.get("State", "")),
                str(row.get("Health", "")) or "-",
                str(row.get("Ports", "")) or "-",
            ]
        )
    stats = compose.stats([c.id for c in replicas if c.state == "running"])
    # CPU % is of one core, as docker stats reports it; "% of limit" divides by the quota.
    table = [["replica", "container", "config", "state", "health", "CPU %", "% of limit", "memory"]]
    for c in replicas:
        row = stats.get(c.replica, {})
        cpu = _percent(row.get("CPUPerc"))
        of_limit = "-" if cpu is None or c.cpus is None else f"{cpu / c.cpus:.1f}"
        limit = "unlimited" if c.cpus is None else format_cpus(c.cpus)
        table.append(
            [
                c.replica,
                c.name,
                c.config or "-",
                c.state,
                c.health or "-",
                "-" if cpu is None else f"{cpu:.1f}",
                f"{of_limit} (of {limit})",
                # `used / limit`, as docker stats writes it.
                str(row.get("MemUsage", "-")),
            ]
        )
    for line in _table(services):
        write(line)
    write("")
    for line in _table(table):
        write(line)
