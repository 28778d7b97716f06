"""Verdicts against the SLO (lab/slo.py) and the flags (lab/trust.py), decided here once.

A window is one measured stretch of an open-model step; a step is judged on the medians
of its repeated windows; the knee is the highest sustained step below the first failing
one; a deployment meets the target when the step at the target's arrival rate is
sustained within the SLO. Closed-model runs (the workshop's view) never decide.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lab import slo, trust
from lab.experiments.measure import Measurement
from lab.trust import Flag

# Layers from outside in: each one's latency contains the next one's.
NESTED_LAYERS = (("edge", "proxy"), ("server", "server"), ("model", "model"))


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements and their range."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        present = sorted(v for v in values if v is not None)
        if not present:
            return None
        return cls(statistics.median(present), present[0], present[-1], len(present))

    @property
    def relative(self) -> float:
        """(high - low) / median: how far the repeats wander."""
        return (self.high - self.low) / self.median if self.median else 0.0


# ------------------------------------------------------------------ windows


def p95(measurement: Measurement) -> float | None:
    """P95 of all prediction requests, successes and failures, at the client."""
    return measurement.layers["client"].p95_s


def within_slo(measurement: Measurement) -> bool:
    client = measurement.layers["client"]
    latency = p95(measurement)
    if not client.rps or latency is None:
        return False
    return slo.meets(client.error_ratio or 0.0, latency)


def window_sustained(measurement: Measurement) -> bool:
    """The client completed at least SUSTAINED_RATIO of the arrivals its clock drew."""
    achieved, offered = measurement.achieved_rate, measurement.offered_rate
    return bool(offered) and achieved is not None and trust.sustained(achieved, offered or 0)


def window_ok(measurement: Measurement) -> bool:
    return window_sustained(measurement) and within_slo(measurement)


# -------------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepFigures:
    """A step's medians and ranges over its windows, as the report prints them."""

    offered: Spread | None
    achieved: Spread | None
    predictions: Spread | None
    sustained_share: Spread | None
    error_ratio: Spread | None
    p95: Spread | None
    p95_success: Spread | None
    p99: Spread | None
    cpu_of_limit: Spread | None
    host_busy: Spread | None


def figures(windows: Sequence[Measurement]) -> StepFigures:
    def cpu(m: Measurement) -> float | None:
        values = [r.cpu_of_limit for r in m.replicas if r.cpu_of_limit is not None]
        return max(values) if values else None

    return StepFigures(
        offered=Spread.of(m.offered_rate for m in windows),
        achieved=Spread.of(m.achieved_rate for m in windows),
        predictions=Spread.of(m.layers["client"].rps for m in windows),
        sustained_share=Spread.of(m.sustained_share for m in windows),
        error_ratio=Spread.of(m.layers["client"].error_ratio for m in windows),
        p95=Spread.of(p95(m) for m in windows),
        p95_success=Spread.of(m.layers["client"].p95_success_s for m in windows),
        p99=Spread.of(m.layers["client"].p99_s for m in windows),
        cpu_of_limit=Spread.of(cpu(m) for m in windows),
        host_busy=Spread.of(m.host_busy for m in windows),
    )


def step_sustained(windows: Sequence[Measurement]) -> bool:
    """The median window completed at least SUSTAINED_RATIO of its measured arrivals."""
    share = figures(windows).sustained_share
    return share is not None and share.median >= trust.SUSTAINED_RATIO


def step_within_slo(windows: Sequence[Measurement]) -> bool:
    """The SLO on the medians: error ratio and P95 of all prediction requests."""
    found = figures(windows)
    if found.p95 is None or found.predictions is None or not found.predictions.median:
        return False
    errors = found.error_ratio.median if found.error_ratio else 0.0
    return slo.meets(errors, found.p95.median)


def disagreement(windows: Sequence[Measurement], tolerance: float) -> str | None:
    """Why a step's repeats disagree (their verdicts differ, or the share of arrivals
    they completed spreads more than `tolerance`), or None.

    The share, not the achieved rate: a Poisson clock's arrivals alone wander by about
    1 / sqrt(rate x window) (6 % at 12.5/s over 20 s), which says nothing of the service."""
    if len(windows) < 2:
        return None
    passing = sum(window_ok(m) for m in windows)
    if 0 < passing < len(windows):
        return f"{passing} of {len(windows)} windows within the SLO and sustained"
    share = Spread.of(m.sustained_share for m in windows)
    if share is not None and share.high - share.low > tolerance:
        return (
            f"completed {share.low:.0%} to {share.high:.0%} of their arrivals, more than "
            f"{tolerance:.0%} apart"
        )
    return None


# --------------------------------------------------------------------- flags


def window_flags(
    measurement: Measurement, expected_replicas: int, host_cores: int, open_model: bool = True
) -> list[Flag]:
    """Everything that makes one window less than trustworthy, typed."""
    m = measurement
    found: list[Flag | None] = [
        trust.generator_saturated(m.generator_cpu_max),
        trust.host_saturated(m.host_busy, host_cores),
    ]
    if open_model:
        found.append(trust.not_sustained(m.offered_rate, m.achieved_rate or 0.0))
    overflowing = [
        f"at the {layer} layer ({stats.overflow_ratio:.1%} above {stats.top_bucket_s:g} s)"
        for layer, stats in m.layers.items()
        if stats.overflow_ratio and stats.top_bucket_s is not None
    ]
    if overflowing:
        found.append(trust.over_top_bucket(", ".join(overflowing)))
    for target, (count, expected) in sorted(m.scrapes.items()):
        found.append(trust.scrape_gap(target, max(0, expected - count), expected))
    outer_name, outer = "client", m.layers["client"].p95_s
    for layer, name in NESTED_LAYERS:
        inner = m.layers[layer].p95_s
        found.append(trust.percentile_inversion(name, inner, outer_name, outer))
        if inner is not None:
            outer_name, outer = name, inner
    found.append(trust.counts_differ(m.client_successes, m.server_successes))
    down = [r.replica for r in m.replicas if r.up_min is not None and r.up_min < 1]
    if down or len(m.replicas) < expected_replicas:
        missing = expected_replicas - len(m.replicas)
        detail = ", ".join(down) if down else f"{missing} of {expected_replicas} not scraped"
        found.append(trust.replica_down(detail))
    return [flag for flag in found if flag is not None]


def step_flags(
    windows: Sequence[Measurement], expected_replicas: int, host_cores: int
) -> list[Flag]:
    """The flags of a step's windows, one per kind, saying in how many windows."""
    by_kind: dict[trust.FlagKind, list[Flag]] = {}
    for m in windows:
        for flag in window_flags(m, expected_replicas, host_cores):
            by_kind.setdefault(flag.kind, []).append(flag)
    return [
        Flag(kind, f"{found[0].message} (in {len(found)} of {len(windows)} windows)")
        if len(windows) > 1
        else found[0]
        for kind, found in sorted(by_kind.items(), key=lambda item: item[0])
    ]


def host_flag(
    windows: Sequence[Measurement], replica_limits: float | None, host_cores: int
) -> Flag | None:
    """Replica limits + the generator's and the proxy's median measured cores against
    the host's cores, over every window of a deployment."""
    generator = Spread.of(m.generator_cpu_mean for m in windows)
    proxy = Spread.of(m.proxy_cpu_cores for m in windows)
    return trust.host_overcommitted(
        replica_limits,
        generator.median / 100 if generator else 0.0,
        proxy.median if proxy else 0.0,
        host_cores,
    )


def closed_view_flags(
    measurement: Measurement, users: int, think_time_s: float, expected_replicas: int,
    host_cores: int,
) -> list[Flag]:  # fmt: skip
    """A closed-model window (the workshop's view): the window's flags, and whether its
    users, not the service, set its RPS (users / think time, never with the latency)."""
    found = window_flags(measurement, expected_replicas, host_cores, open_model=False)
    bound = trust.closed_model_bound(users, think_time_s)
    flag = trust.closed_model_ceiling(measurement.achieved_rate or 0.0, bound)
    return found + ([flag] if flag else [])


def unique(flags: Iterable[Flag]) -> list[Flag]:
    """Each flag once, in a stable order (kind, then message)."""
    return sorted(set(flags))


# ------------------------------------------------------------ knee, verdict


class _Judged(Protocol):
    rate: float

    @property
    def ok(self) -> bool: ...


def knee(steps: Sequence[_Judged]) -> tuple[float | None, float | None]:
    """(knee, first failing rate): the highest step sustained within the SLO below the
    lowest failing one. A step that passed above a failure does not count: the load
    between them was not sustained."""
    failing = [s.rate for s in steps if not s.ok]
    upper = min(failing) if failing else None
    good = [s.rate for s in steps if s.ok and (upper is None or s.rate < upper)]
    return (max(good) if good else None), upper


def meets_target(steps: Sequence[_Judged], target_rate: float) -> bool:
    """The verdict: the step at the target's rate was measured and sustained within the
    SLO, and so was every step below it (the knee is at or above the target)."""
    found, _ = knee(steps)
    at_target = [s for s in steps if math.isclose(s.rate, target_rate)]
    return bool(at_target) and found is not None and found >= target_rate
