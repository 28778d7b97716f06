"""The experiments file (YAML): which deployments, which load, which SLO.

Durations are written like Locust's (`30s`, `2m`) or as seconds. See experiments/*.yml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from lab.core import Deployment, ResourceError
from lab.errors import LabError, one_line

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def _seconds(value: object) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30s, 2m or 45")
    number, unit = match.groups()
    return float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[unit]


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigSpec(Strict):
    replicas: int = Field(ge=1, le=64)
    cpus: str | float | None = None
    memory: str | int | None = None

    def deployment(self) -> Deployment:
        return Deployment.parse(self.replicas, self.cpus, self.memory)


class Slo(Strict):
    error_ratio: float = Field(default=0.01, gt=0, lt=1)
    p95_seconds: float = Field(default=1.0, gt=0)


class TargetLoad(Strict):
    """The load every deployment must sustain: the SLO question."""

    model: Literal["closed", "open"] = "closed"
    users: int = Field(default=100, ge=1)
    spawn_rate: float = Field(default=50, gt=0)
    # 0 sends the next request as soon as the answer arrives: the most a user can offer.
    think_time: Annotated[float, BeforeValidator(_seconds), Field(ge=0)] = 1.0
    arrival_rate: float = Field(default=0, ge=0)
    warmup: Seconds = 10
    window: Seconds = 30
    repeats: int = Field(default=1, ge=1, le=10)

    @model_validator(mode="after")
    def _open_needs_a_rate(self) -> TargetLoad:
        if self.model == "open" and self.arrival_rate <= 0:
            raise ValueError("an open-model target needs arrival_rate > 0")
        return self


class CapacitySearch(Strict):
    """Open-model steps: the highest rate meeting the SLO is the deployment's knee."""

    rates: list[float] = Field(min_length=1)
    step: Seconds = 15
    # Seconds at the start of each step left out of its measurement (queues settle).
    settle: Seconds = 3
    # Users in the pool: enough to start `rate` tasks/s while each takes up to this long.
    latency_budget: Seconds = 3
    stop_after_breach: bool = True
    # Bisections between the last sustained rate and the first failing one.
    refine: int = Field(default=2, ge=0, le=6)

    @model_validator(mode="after")
    def _ordered(self) -> CapacitySearch:
        if self.rates != sorted(self.rates) or self.rates[0] <= 0:
            raise ValueError("capacity rates must be positive and increasing")
        if self.settle >= self.step:
            raise ValueError("settle must be shorter than step")
        return self

    def users(self) -> int:
        return max(20, int(max(self.rates) * self.latency_budget))


class Failover(Strict):
    """Kill one replica in the middle of a short run: errors and recovery, 1 vs several."""

    enabled: bool = True
    users: int = Field(default=40, ge=1)
    think_time: Seconds = 0.5
    duration: Seconds = 20
    kill_after: Seconds = 6


class LoadGenerator(Strict):
    """A CPU budget for Locust (native runtime with cgroups): leaves the rest of a small
    machine to the stack under test, or plays a weaker load-generator machine."""

    cpus: float | None = Field(default=None, gt=0, le=64)


def _on_off(value: object) -> object:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class Service(Strict):
    """How the replicas serve: API_ENGINE and API_BATCHING of every replica."""

    engine: Literal["onnx", "sklearn"] = "onnx"
    # YAML 1.1 reads a bare on/off as a boolean; both spellings mean the same here.
    batching: Annotated[Literal["on", "off"], BeforeValidator(_on_off)] = "on"


class Experiment(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    service: Service = Service()
    slo: Slo = Slo()
    target: TargetLoad = TargetLoad()
    capacity: CapacitySearch | None = None
    failover: Failover = Failover()
    load_generator: LoadGenerator = LoadGenerator()
    configs: list[ConfigSpec] = Field(min_length=1)

    def deployments(self) -> list[Deployment]:
        return [spec.deployment() for spec in self.configs]

    def estimated_seconds(self, per_config_overhead: float = 20) -> float:
        """Rough plan length, for the progress bar: scaling, runs and Locust start/stop."""
        target = self.target.repeats * (self.target.warmup + self.target.window + 8)
        capacity = 0.0
        if self.capacity:
            steps = len(self.capacity.rates) + self.capacity.refine
            capacity = self.capacity.step * steps + 8 * (1 + self.capacity.refine)
        failover = self.failover.duration + 8 if self.failover.enabled else 0
        return len(self.configs) * (per_config_overhead + target + capacity + failover)


def load_experiment(path: Path) -> Experiment:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise LabError(f"cannot read the experiments file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise LabError(f"{path} is not valid YAML: {exc}") from None
    try:
        experiment = Experiment.model_validate(data)
        experiment.deployments()
    except ValidationError as exc:
        raise LabError(f"{path}: {one_line(exc)}") from None
    except ResourceError as exc:
        raise LabError(f"{path}: {exc}") from None
    return experiment
