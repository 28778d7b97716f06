"""Resource limits in Docker's syntax: CPUs (`0.5`, `1`, `2.0`) and memory (`512m`, `1g`,
`268435456`).

A replica parses its own limits with these (API_CPU_LIMIT, API_MEMORY_LIMIT); the lab's
`Deployment` (lab/core.py) builds on the same functions, so the syntax is defined once.
"""

from __future__ import annotations

import re

_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
UNLIMITED = ("", "0", "none", "unlimited")


class ResourceError(ValueError):
    """A CPU or memory value that is not in Docker's syntax."""


def parse_cpus(value: str | float | None) -> float | None:
    """CPUs as a float (`0.5` -> 0.5); None when unlimited (empty, `0`, `none`)."""
    if value is None or str(value).strip().lower() in UNLIMITED:
        return None
    try:
        cpus = float(value)
    except ValueError:
        raise ResourceError(
            f"CPUS={value!r} is not a number of CPUs; use Docker's syntax, e.g. 0.5 or 2"
        ) from None
    if not 0.01 <= cpus <= 1024:
        raise ResourceError(f"CPUS={value!r} is out of range; use a value between 0.01 and 1024")
    return cpus


def parse_memory(value: str | int | None) -> int | None:
    """Memory in bytes (`512m` -> 536870912); None when unlimited (empty, `0`, `none`)."""
    if value is None or str(value).strip().lower() in UNLIMITED:
        return None
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise ResourceError(
            f"MEMORY={value!r} is not a memory size; use Docker's syntax, e.g. 512m or 1g"
        )
    number, unit = match.groups()
    size = int(float(number) * _MEMORY_UNITS[unit.lower()])
    if size < 6 * 1024**2:
        raise ResourceError(f"MEMORY={value!r} is below Docker's minimum of 6m")
    return size


def format_memory(size: int | None) -> str:
    """Bytes back to the shortest exact Docker-style string (536870912 -> `512m`)."""
    if size is None:
        return "unlimited"
    for unit in ("t", "g", "m", "k"):
        factor = _MEMORY_UNITS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def format_cpus(cpus: float | None) -> str:
    return "unlimited" if cpus is None else f"{cpus:.1f}" if cpus * 10 % 1 == 0 else f"{cpus:g}"
