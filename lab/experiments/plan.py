"""The experiments file (YAML): which deployments, which load, which SLO.

Durations are written like Locust's (`30s`, `2m`) or as seconds. See experiments/*.yml.
"""

from __future__ import annotations

import math
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


# A measured window spans at least this many pushes of the load generator's stats
# (LAB_PUSH_INTERVAL_SECONDS apart): rate() and the quantiles then rest on enough
# samples, whatever the scrape clock's alignment.
MIN_WINDOW_PUSHES = 20
# ... and at least this many scrapes.
MIN_WINDOW_SCRAPES = 4


class Target(Strict):
    """The load every deployment must sustain: an arrival rate (open model), the SLO
    question. The SLO itself is lab/slo.py's, the same everywhere."""

    arrival_rate: float = Field(gt=0)


class WorkshopView(Strict):
    """The workshop's closed model (users with think time): shown beside the verdicts,
    never deciding one. Its RPS is set by its users as much as by the service."""

    users: int = Field(default=100, ge=1)
    spawn_rate: float = Field(default=50, gt=0)
    # 0 sends the next request as soon as the answer arrives: the most a user can offer.
    think_time: Annotated[float, BeforeValidator(_seconds), Field(ge=0)] = 1.0
    warmup: Seconds = 5
    window: Seconds = 20


class CapacitySearch(Strict):
    """Open-model steps: the highest rate sustained within the SLO is the knee.

    Each step runs `settle` seconds of warm-up, then `repeats` consecutive windows of
    `window` seconds each; the step's median decides, and its spread is reported."""

    rates: list[float] = Field(min_length=1)
    settle: Seconds = 5
    window: Seconds = 20
    repeats: int = Field(default=3, ge=1, le=10)
    # Repeats disagree when their verdicts differ or their achieved rates spread more
    # than this share of the median: the step is then measured once more.
    tolerance: float = Field(default=0.1, gt=0, lt=1)
    # Users in the pool: enough to start `rate` tasks/s while each takes up to this long.
    latency_budget: Seconds = 3
    stop_after_breach: bool = True
    # Bisections between the last sustained rate and the first failing one.
    refine: int = Field(default=1, ge=0, le=6)

    @model_validator(mode="after")
    def _ordered(self) -> CapacitySearch:
        if self.rates != sorted(self.rates) or self.rates[0] <= 0:
            raise ValueError("capacity rates must be positive and increasing")
        return self

    @property
    def step(self) -> float:
        """Seconds one step lasts: warm-up and every repeat."""
        return self.settle + self.repeats * self.window

    def users(self, rate: float | None = None) -> int:
        return max(20, int((rate or max(self.rates)) * self.latency_budget))

    def with_target(self, target_rate: float) -> list[float]:
        """The rates to step through: the plan's, and the target's so that the verdict
        and the knee come from the same measured step."""
        return sorted({*self.rates, target_rate})


class Failover(Strict):
    """Kill one replica in the middle of a short run: errors and recovery, 1 vs several."""

    enabled: bool = True
    users: int = Field(default=40, ge=1)
    think_time: Seconds = 0.5
    duration: Seconds = 20
    kill_after: Seconds = 6


class LoadGenerator(Strict):
    """A CPU budget for Locust (native runtime with cgroups): leaves the rest of a small
    machine to the stack under test, or plays a weaker load-generator machine. `workers`
    Locust processes share the load when one process saturates its core."""

    cpus: float | None = Field(default=None, gt=0, le=64)
    workers: int = Field(default=1, ge=1, le=64)


def _on_off(value: object) -> object:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class Service(Strict):
    """How the replicas serve: API_ENGINE and API_BATCHING of every replica."""

    engine: Literal["onnx", "sklearn"] = "onnx"
    # YAML 1.1 reads a bare on/off as a boolean; both spellings mean the same here.
    batching: Annotated[Literal["on", "off"], BeforeValidator(_on_off)] = "on"


class EngineLever(Strict):
    """The engine as a lever: one deployment of the plan measured again at the target's
    arrival rate (the same settle, windows and repeats) serving with another engine, so
    the report can say how much less CPU the same SLO needs. The baseline is the
    matrix's own step at the target for that deployment, measured with the plan's
    service; only the lever's service is run again."""

    service: Service = Service(engine="onnx", batching="on")
    # One deployment of the plan's configs; by default its smallest (CPU, then memory).
    config: ConfigSpec | None = None
    # Steps above the target, for the lever's knee where the host can generate them;
    # the target's rate is always among the steps.
    rates: list[float] = Field(default_factory=list)
    refine: int = Field(default=0, ge=0, le=6)

    @model_validator(mode="after")
    def _ordered(self) -> EngineLever:
        if self.rates != sorted(self.rates) or any(rate <= 0 for rate in self.rates):
            raise ValueError("engine_lever rates must be positive and increasing")
        return self


class Experiment(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    service: Service = Service()
    target: Target
    workshop_view: WorkshopView | None = None
    capacity: CapacitySearch
    failover: Failover = Failover()
    load_generator: LoadGenerator = LoadGenerator()
    configs: list[ConfigSpec] = Field(min_length=1)
    engine_lever: EngineLever | None = None

    @model_validator(mode="after")
    def _lever_differs(self) -> Experiment:
        lever = self.engine_lever
        if lever is None:
            return self
        if lever.service == self.service:
            raise ValueError(
                "engine_lever.service is the plan's own service: give it another engine or "
                "batching (e.g. engine: onnx, batching: on)"
            )
        if lever.config is not None:
            labels = [spec.deployment().label for spec in self.configs]
            if lever.config.deployment().label not in labels:
                raise ValueError(
                    f"engine_lever.config {lever.config.deployment().label} is not one of the "
                    f"plan's configs ({', '.join(labels)}): its baseline is the matrix's step"
                )
        return self

    def deployments(self) -> list[Deployment]:
        return [spec.deployment() for spec in self.configs]

    def lever_deployment(self) -> Deployment | None:
        """The engine lever's deployment: the one named, else the plan's smallest."""
        lever = self.engine_lever
        if lever is None:
            return None
        if lever.config is not None:
            return lever.config.deployment()

        def size(d: Deployment) -> tuple[float, float, int]:
            cores = math.inf if d.cpus is None else d.replicas * d.cpus
            memory = math.inf if d.memory is None else d.replicas * d.memory
            return (cores, memory, d.replicas)

        return min(self.deployments(), key=size)

    def lever_rates(self) -> list[float]:
        assert self.engine_lever is not None
        return sorted({*self.engine_lever.rates, self.target.arrival_rate})

    def estimated_seconds(self, per_config_overhead: float = 20) -> float:
        """Rough plan length, for the progress bar: scaling, runs and Locust start/stop;
        the capacity search assumes half the rates are reached and one re-measurement."""
        view = self.workshop_view
        closed = view.warmup + view.window + 8 if view else 0.0
        plan = self.capacity
        steps = max(1, len(plan.with_target(self.target.arrival_rate)) // 2) + plan.refine + 1
        capacity = plan.step * steps + 8 * (2 + plan.refine)
        failover = self.failover.duration + 8 if self.failover.enabled else 0
        total = len(self.configs) * (per_config_overhead + closed + capacity + failover)
        if self.engine_lever is not None:
            # Every lever step is assumed reached: the optimised engine rarely breaks.
            lever = plan.step * len(self.lever_rates()) + 8 * (1 + self.engine_lever.refine)
            total += per_config_overhead + lever
        return total


def window_problem(experiment: Experiment, scrape_s: float, push_s: float) -> str | None:
    """Why a window of the plan is too short for the stack's scrape and push intervals."""
    windows = {"capacity.window": experiment.capacity.window}
    if experiment.workshop_view:
        windows["workshop_view.window"] = experiment.workshop_view.window
    for name, seconds in windows.items():
        if seconds < MIN_WINDOW_SCRAPES * scrape_s:
            return (
                f"{name} is {seconds:g} s, under {MIN_WINDOW_SCRAPES} scrape intervals "
                f"({MIN_WINDOW_SCRAPES * scrape_s:g} s): rate() would rest on too few samples; "
                "lengthen it or scrape more often"
            )
    if experiment.capacity.window < MIN_WINDOW_PUSHES * push_s:
        return (
            f"capacity.window is {experiment.capacity.window:g} s: a measured window must span "
            f"at least {MIN_WINDOW_PUSHES} pushes of the load generator "
            f"({MIN_WINDOW_PUSHES * push_s:g} s at LAB_PUSH_INTERVAL_SECONDS={push_s:g})"
        )
    return None


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
