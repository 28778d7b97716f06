"""Verdicts against the SLO, and the flags that say when a result cannot be trusted."""

from __future__ import annotations

from typing import Any

from monitoring.experiments.measure import Measurement
from monitoring.experiments.plan import Slo

SATURATED_CPU = 90.0
COUNT_TOLERANCE = 0.01


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
    return (measurement.client_all_rps or 0.0) >= 0.95 * offered


def flags(
    measurement: Measurement,
    expected_replicas: int,
    summary: dict[str, Any] | None = None,
    closed_model: bool = True,
) -> list[str]:
    found = []
    if (measurement.generator_cpu_max or 0) > SATURATED_CPU:
        found.append(
            f"load generator saturated ({measurement.generator_cpu_max:.0f}% CPU): "
            "client latencies are inflated"
        )
    ceiling = (summary or {}).get("closed_model_ceiling_rps")
    client_rps = measurement.layers["client"].rps or 0.0
    if closed_model and ceiling and client_rps >= 0.9 * ceiling:
        found.append(
            f"closed-model ceiling reached ({client_rps:.0f} of {ceiling:.0f} RPS = users / "
            "(think time + latency)): this RPS is the offered load, not the capacity"
        )
    offered = measurement.offered_rate
    if not closed_model and offered and not sustained(measurement, offered):
        achieved = measurement.client_all_rps or 0.0
        found.append(
            f"offered {offered:.0f}/s, completed {achieved:.0f}/s: requests piled up, or the "
            "generator could not keep pace"
        )
    overflowing = [
        layer for layer, stats in measurement.layers.items() if (stats.overflow_rps or 0) > 0
    ]
    if overflowing:
        found.append(
            f"latency in the top bucket (> 60 s) at the {', '.join(overflowing)} layer: "
            "quantiles there are lower bounds"
        )
    client, server = measurement.client_successes, measurement.server_successes
    if client and server:
        gap = abs(client - server) / max(client, server)
        if gap > COUNT_TOLERANCE:
            found.append(
                f"client and server counts differ: {client:.0f} successful predictions seen "
                f"by Locust, {server:.0f} by the replicas ({gap:.1%})"
            )
    down = [r.replica for r in measurement.replicas if r.up_min is not None and r.up_min < 1]
    if down or len(measurement.replicas) < expected_replicas:
        missing = expected_replicas - len(measurement.replicas)
        detail = ", ".join(down) if down else f"{missing} of {expected_replicas} not scraped"
        found.append(
            f"replica down during the window ({detail}): down, or too saturated to answer "
            "Prometheus' scrapes in time"
        )
    return found
