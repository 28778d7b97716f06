"""A capacity model fitted to measured knees, and the smallest deployment it predicts.

The Universal Scalability Law, X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)),
with N the deployment's CPU in all (replicas x CPU each), has three parameters: it is
fitted only when at least four bracketed knees at four distinct CPU totals support it.
With fewer points it would pass through every point and predict nothing, so the model is
then the simplest one the data supports: throughput proportional to CPU (one parameter,
RPS per core, by least squares), and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.core import Deployment, ResourceError
from lab.experiments.results import ConfigResult

# USL needs more points than its three parameters.
USL_MIN_POINTS = 4
# Candidates for the smallest deployment: up to this many replicas of a replica size
# that was measured (a size never measured would be a guess about its memory and its
# per-request cost, not a prediction).
MAX_REPLICAS = 4


@dataclass(frozen=True)
class Point:
    label: str
    cores: float
    knee: float
    replica_cpus: float
    replica_memory: int | None


@dataclass(frozen=True)
class Fit:
    model: str  # "usl" or "proportional"
    params: dict[str, float]
    points: list[Point]
    why: str
    # Points left out (lower bounds, no knee, unlimited CPU, untrusted), with the reason.
    left_out: list[str] = field(default_factory=list)

    def predict(self, cores: float) -> float:
        if self.model == "usl":
            lam, sigma, kappa = self.params["lambda"], self.params["sigma"], self.params["kappa"]
            return lam * cores / (1 + sigma * (cores - 1) + kappa * cores * (cores - 1))
        return self.params["rps_per_core"] * cores

    def describe(self) -> str:
        if self.model == "usl":
            p = self.params
            return (
                f"USL: X(N) = {p['lambda']:.1f} N / (1 + {p['sigma']:.3f} (N - 1) + "
                f"{p['kappa']:.4f} N (N - 1)), N = CPU in all"
            )
        return f"proportional: X(N) = {self.params['rps_per_core']:.1f} N, N = CPU in all"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fit:
        points = [Point(**p) for p in data["points"]]
        return cls(data["model"], data["params"], points, data["why"], data.get("left_out", []))


def points_of(configs: list[ConfigResult]) -> tuple[list[Point], list[str]]:
    """Bracketed, trusted knees of deployments with a CPU limit; and why others are not."""
    points, left_out = [], []
    for c in configs:
        if c.cpus is None:
            left_out.append(f"{c.label}: no CPU limit")
        elif c.knee_rps is None:
            left_out.append(f"{c.label}: no sustained step")
        elif c.knee_upper_rps is None:
            left_out.append(f"{c.label}: knee >= {c.knee_rps:g} is only a lower bound")
        elif not knee_trusted(c):
            left_out.append(f"{c.label}: its knee's steps carry invalidating flags")
        else:
            points.append(Point(c.label, c.replicas * c.cpus, c.knee_rps, c.cpus, c.memory))
    return points, left_out


def knee_trusted(config: ConfigResult) -> bool:
    """The steps that bracket the knee (the last sustained, the first failing) are trusted."""
    around = [s for s in config.steps if s.rate in (config.knee_rps, config.knee_upper_rps)]
    return bool(around) and all(s.trusted for s in around)


def fit(configs: list[ConfigResult]) -> Fit | None:
    points, left_out = points_of(configs)
    if not points:
        return None
    distinct = len({p.cores for p in points})
    if len(points) >= USL_MIN_POINTS and distinct >= USL_MIN_POINTS:
        usl = _fit_usl(points)
        if usl is not None:
            why = f"{len(points)} knees at {distinct} CPU totals: enough for USL's 3 parameters"
            return Fit("usl", usl, points, why, left_out)
    per_core = sum(p.knee * p.cores for p in points) / sum(p.cores**2 for p in points)
    why = (
        f"{len(points)} bracketed knee(s) at {distinct} CPU total(s): USL's three parameters "
        f"need at least {USL_MIN_POINTS}, so the simpler proportional model is fitted"
    )
    return Fit("proportional", {"rps_per_core": per_core}, points, why, left_out)


def _fit_usl(points: list[Point]) -> dict[str, float] | None:
    import numpy as np
    from scipy.optimize import curve_fit

    def usl(n: Any, lam: float, sigma: float, kappa: float) -> Any:
        return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))

    cores = np.array([p.cores for p in points])
    knees = np.array([p.knee for p in points])
    start = (float(max(knees / cores)), 0.05, 0.001)
    try:
        (lam, sigma, kappa), _ = curve_fit(
            usl, cores, knees, p0=start, bounds=([0, 0, 0], [np.inf, 1, 1]), maxfev=10000
        )
    except (RuntimeError, ValueError):
        return None
    return {"lambda": float(lam), "sigma": float(sigma), "kappa": float(kappa)}


@dataclass(frozen=True)
class Choice:
    deployment: Deployment
    predicted_knee: float
    cores: float
    extrapolated: bool


def smallest(model: Fit, target_rps: float) -> Choice:
    """The deployment with the least CPU (then memory, then replicas) whose predicted knee
    reaches the target, among up to MAX_REPLICAS replicas of each measured replica size;
    ResourceError when none of them does."""
    measured = [p.cores for p in model.points]
    sizes = sorted({(p.replica_cpus, p.replica_memory) for p in model.points}, key=str)
    candidates = []
    best = 0.0
    for replicas in range(1, MAX_REPLICAS + 1):
        for cpus, memory in sizes:
            deployment = Deployment(replicas, cpus, memory)
            cores = replicas * cpus
            knee = model.predict(cores)
            best = max(best, knee)
            if knee >= target_rps:
                key = (cores, replicas * (memory or 0), replicas)
                extrapolated = not min(measured) <= cores <= max(measured)
                candidates.append((key, Choice(deployment, knee, cores, extrapolated)))
    if not candidates:
        raise ResourceError(
            f"no deployment of up to {MAX_REPLICAS} replicas of a measured size reaches "
            f"{target_rps:g} req/s by the model ({model.describe()}; at most {best:.0f}): "
            "lower the target, measure larger replicas, or use the optimised engine"
        )
    return min(candidates, key=lambda item: item[0])[1]


def probe_rates(target_rps: float, predicted_knee: float) -> list[float]:
    """Rates the verifying run steps through: the target, then the predicted knee and
    25 % and 60 % above it, so that the measured knee is bracketed by a failing step
    when the model is right or somewhat pessimistic (the search stops at the first
    failure, so rates above it cost nothing)."""
    around = {float(math.floor(predicted_knee * factor)) for factor in (1.0, 1.25, 1.6)}
    return sorted({target_rps, *(r for r in around if r > 0)})
