"""Resource limits in Docker's syntax, and the `config` label that names a deployment.

Both runtimes and the experiment runner describe a deployment the same way: replicas, CPUs
per replica (`0.5`, `1`, `2.0`) and memory per replica (`512m`, `1g`, `268435456`). The
label built from them, for example `r2-c1.0-m1g`, is what every series that compares
deployments carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Deployment:
    """Replicas and per-replica limits; `label` is the `config` label value."""

    replicas: int
    cpus: float | None
    memory: int | None

    @classmethod
    def parse(cls, replicas: int | str, cpus: str | float | None, memory: str | int | None):
        try:
            count = int(replicas)
        except ValueError:
            raise ResourceError(f"REPLICAS={replicas!r} is not a whole number") from None
        if not 1 <= count <= 64:
            raise ResourceError(f"REPLICAS={replicas!r} is out of range; use 1 to 64")
        return cls(count, parse_cpus(cpus), parse_memory(memory))

    @classmethod
    def from_label(cls, label: str) -> Deployment:
        """The inverse of `label`: `r2-c1.0-m1g` -> 2 replicas, 1 CPU, 1 GiB each."""
        match = re.fullmatch(r"r(\d+)-c([0-9.]+|max)-m([0-9]+[kmgt]?|max)", label.strip())
        if not match:
            raise ResourceError(f"{label!r} is not a config label like r2-c1.0-m1g")
        replicas, cpus, memory = match.groups()
        return cls.parse(
            replicas, None if cpus == "max" else cpus, None if memory == "max" else memory
        )

    @property
    def label(self) -> str:
        cpus = "max" if self.cpus is None else format_cpus(self.cpus)
        memory = "max" if self.memory is None else format_memory(self.memory)
        return f"r{self.replicas}-c{cpus}-m{memory}"
