"""The lab's shared concepts: where the repository is, and what a deployment is.

A deployment is replicas plus CPUs and memory per replica, in Docker's syntax (`0.5`,
`512m`); its label, for example `r2-c1.0-m1g`, is the `config` label every series that
compares deployments carries. Both runtimes, the command line and the experiments use
this one definition. This module depends on nothing else in the lab; the syntax itself
comes from api/resources.py, because a replica parses its own limits with it too.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from api.resources import (
    ResourceError,
    format_cpus,
    format_memory,
    parse_cpus,
    parse_memory,
)

__all__ = [
    "LOCUST",
    "LOCUST_CONF",
    "REPO",
    "Deployment",
    "ResourceError",
    "cpus_setting",
    "format_cpus",
    "format_memory",
    "memory_setting",
    "parse_cpus",
    "parse_memory",
]

# The repository's root: configuration files, the model, the run and results folders.
REPO = Path(__file__).resolve().parents[1]


def cpus_setting(cpus: float | None) -> str:
    """CPUs as a CPUS value that parses back to the same limit ("" for unlimited)."""
    return "" if cpus is None else format_cpus(cpus)


def memory_setting(memory: int | None) -> str:
    """Bytes as a MEMORY value that parses back to the same limit ("" for unlimited)."""
    return "" if memory is None else format_memory(memory)


@dataclass(frozen=True)
class Deployment:
    """Replicas and per-replica limits; `label` is the `config` label value."""

    replicas: int
    cpus: float | None
    memory: int | None

    @classmethod
    def parse(
        cls, replicas: int | str, cpus: str | float | None, memory: str | int | None
    ) -> Deployment:
        """From the Makefile's REPLICAS, CPUS and MEMORY; ResourceError names a bad one."""
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

    def with_changes(
        self,
        replicas: str | None = None,
        cpus: str | None = None,
        memory: str | None = None,
    ) -> Deployment:
        """This deployment with the values given changed: what is not given keeps its
        value, so `make scale CPUS=0.5` keeps the replica count and `REPLICAS=4` the limits."""
        return Deployment.parse(
            replicas if replicas is not None else self.replicas,
            cpus if cpus is not None else cpus_setting(self.cpus),
            memory if memory is not None else memory_setting(self.memory),
        )


# Locust from the same environment as the lab, and the lab's Locust settings.
LOCUST = str(Path(sys.executable).parent / "locust")
LOCUST_CONF = REPO / "locust" / "locust.conf"
