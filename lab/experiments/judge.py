"""Verdicts against the SLO, and the flags (lab/trust.py) of one measured window."""

from __future__ import annotations

from typing import Any

from lab import trust
from lab.experiments.measure import Measurement
from lab.experiments.plan import Slo
from lab.trust import Flag


def meets_slo(measurement: Measurement, slo: Slo) -> bool:
    """< slo.error_ratio failed requests and P95 of successful ones < slo.p95, for the client."""
    client = measurement.layers["client"]
    if not client.rps:
        return False
    errors_ok = (client.error_ratio or 0.0) <= slo.error_ratio
    p95 = client.p95_success_s
    return errors_ok and p95 is not None and p95 <= slo.p95_seconds


def sustained(measurement: Measurement, planned_rate: float) -> bool:
    """Open model: the client completed (nearly) every task the arrival clock offered.

    Compared with the arrivals actually drawn in the window (a Poisson process wanders
    around its rate), so a step fails only when requests pile up, not by chance."""
    offered = measurement.offered_rate or planned_rate
    return trust.sustained(measurement.client_all_rps or 0.0, offered)


def flags(
    measurement: Measurement,
    expected_replicas: int,
    summary: dict[str, Any] | None = None,
    closed_model: bool = True,
) -> list[Flag]:
    found = [trust.generator_saturated(measurement.generator_cpu_max)]
    client_rps = measurement.layers["client"].rps or 0.0
    if closed_model:
        ceiling = (summary or {}).get("closed_model_ceiling_rps")
        found.append(trust.closed_model_ceiling(client_rps, ceiling))
    else:
        achieved = measurement.client_all_rps or 0.0
        found.append(trust.not_sustained(measurement.offered_rate, achieved))
    overflowing = [
        layer for layer, stats in measurement.layers.items() if (stats.overflow_rps or 0) > 0
    ]
    if overflowing:
        found.append(trust.over_top_bucket(f"at the {', '.join(overflowing)} layer"))
    found.append(trust.counts_differ(measurement.client_successes, measurement.server_successes))
    down = [r.replica for r in measurement.replicas if r.up_min is not None and r.up_min < 1]
    if down or len(measurement.replicas) < expected_replicas:
        missing = expected_replicas - len(measurement.replicas)
        detail = ", ".join(down) if down else f"{missing} of {expected_replicas} not scraped"
        found.append(trust.replica_down(detail))
    return [flag for flag in found if flag is not None]
