"""The engine as a lever: the same deployment at the same target arrival rate serving
with two engines (the plan's, usually one scikit-learn call per request, and the
lever's, usually ONNX Runtime with micro-batching), set side by side on the CPU each
prediction costs, the P95 and the knee, then turned into the resources each engine needs
for the target.

The optimised engine's knee usually lies far above what the load generator on a small
host can offer: a knee is printed as measured only when a failing step brackets it and
no step of the lever carries a flag saying that the load generator or the host, not the
engine, was the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab import trust
from lab.experiments import judge
from lab.experiments.judge import Spread
from lab.experiments.measure import Measurement
from lab.experiments.results import ConfigResult, ExperimentResults, Step

# Flags saying that the host or the generator, not the engine, limited a lever step.
HOST_LIMITS = frozenset(
    {
        trust.FlagKind.GENERATOR_SATURATED,
        trust.FlagKind.HOST_SATURATED,
        trust.FlagKind.ARRIVAL_DEFICIT,
    }
)


def cpu_seconds_per_1000(m: Measurement) -> float | None:
    """CPU-seconds all replicas used per 1,000 prediction requests in one window: the
    replicas' cores (CPU-seconds per second) over the predictions the client sent per
    second. The replicas' other requests (10 % of the mix) are in the CPU too, the same
    for both engines."""
    cores = [r.cpu_cores for r in m.replicas if r.cpu_cores is not None]
    predictions = m.layers["client"].rps
    if not cores or not predictions:
        return None
    return sum(cores) / predictions * 1000


def replica_cores(m: Measurement) -> float | None:
    cores = [r.cpu_cores for r in m.replicas if r.cpu_cores is not None]
    return sum(cores) if cores else None


@dataclass(frozen=True)
class EngineAtTarget:
    """One engine's step at the target's rate on the lever's deployment."""

    engine: str
    batching: str
    config: ConfigResult
    step: Step | None
    cpu_per_1000: Spread | None
    cores_used: Spread | None
    p95: Spread | None

    @classmethod
    def of(
        cls, service: dict[str, str], config: ConfigResult, target_rate: float
    ) -> EngineAtTarget:
        step = next((s for s in config.steps if math.isclose(s.rate, target_rate)), None)
        windows = step.windows if step else []
        return cls(
            engine=service["engine"],
            batching=service["batching"],
            config=config,
            step=step,
            cpu_per_1000=Spread.of(cpu_seconds_per_1000(m) for m in windows),
            cores_used=Spread.of(replica_cores(m) for m in windows),
            p95=Spread.of(judge.p95(m) for m in windows),
        )

    @property
    def meets(self) -> bool:
        return self.step is not None and self.step.ok

    @property
    def trusted(self) -> bool:
        return self.step is not None and self.step.trusted

    def cores_for(self, target_rate: float) -> float | None:
        """Cores the replicas would be busy for at the target's predictions, at this
        engine's measured CPU per prediction: a floor, before any headroom."""
        if self.cpu_per_1000 is None or self.step is None:
            return None
        # Predictions per arrival: each arrival sends one request, most of them
        # predictions; measured over the requests completed, whatever was left undone.
        found = judge.figures(self.step.windows)
        if found.predictions is None or found.achieved is None or not found.achieved.median:
            return None
        share = found.predictions.median / found.achieved.median
        return self.cpu_per_1000.median / 1000 * share * target_rate


@dataclass(frozen=True)
class KneeReading:
    """What the lever's steps say about its knee."""

    # "measured": bracketed by a failing step, every bracketing step trusted and free of
    # host limits; "lower-bound": every step sustained within the SLO with no host limit;
    # "host-limited": a step carries a flag saying the host or generator was the limit.
    kind: str
    low: float | None
    high: float | None
    # Why the host limited it: "<rate>/s: <flag kinds>" per limited step.
    limits: list[str]
    # Steps whose measured arrivals fell short of the planned rate (median < 95 %): the
    # generator could not draw the rate asked of it.
    short: list[str]


def knee_reading(lever: ConfigResult) -> KneeReading:
    limits = []
    short = []
    for step in sorted(lever.steps, key=lambda s: s.rate):
        kinds = sorted({f.kind.value for f in step.flags if f.kind in HOST_LIMITS})
        if kinds:
            limits.append(f"{step.rate:g}/s: {', '.join(kinds)}")
        offered = judge.figures(step.windows).offered
        if offered is not None and offered.median < trust.SUSTAINED_RATIO * step.rate:
            short.append(f"{step.rate:g}/s drew {offered.median:.1f}/s")
    low, high = lever.knee_rps, lever.knee_upper_rps
    if limits or short:
        return KneeReading("host-limited", low, high, limits, short)
    if high is None:
        return KneeReading("lower-bound", low, None, [], [])
    bracketing = [s for s in lever.steps if s.rate in (low, high)]
    if all(s.trusted for s in bracketing):
        return KneeReading("measured", low, high, [], [])
    return KneeReading("host-limited", low, high, ["a bracketing step is untrusted"], [])


@dataclass(frozen=True)
class Lever:
    """The comparison the report prints: baseline (the plan's engine, the matrix's own
    step at the target) against the lever's engine on the same deployment."""

    target_rate: float
    baseline: EngineAtTarget
    lever: EngineAtTarget
    knee: KneeReading

    @property
    def cpu_ratio(self) -> float | None:
        """How many times less CPU per prediction the lever's engine needs."""
        a, b = self.baseline.cpu_per_1000, self.lever.cpu_per_1000
        if a is None or b is None or not b.median:
            return None
        return a.median / b.median

    @property
    def p95_ratio(self) -> float | None:
        a, b = self.baseline.p95, self.lever.p95
        if a is None or b is None or not b.median:
            return None
        return a.median / b.median


def of(results: ExperimentResults) -> Lever | None:
    """The lever of a run, or None when the plan had none or it was not measured."""
    lever = results.engine_lever
    plan = results.plan.get("engine_lever")
    if lever is None or plan is None:
        return None
    baseline = next((c for c in results.configs if c.label == lever.label), None)
    if baseline is None:
        return None
    rate = float(results.plan["target"]["arrival_rate"])
    return Lever(
        target_rate=rate,
        baseline=EngineAtTarget.of(results.plan["service"], baseline, rate),
        lever=EngineAtTarget.of(plan["service"], lever, rate),
        knee=knee_reading(lever),
    )
