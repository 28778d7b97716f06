"""Latency counts in the project's buckets, mergeable across Locust workers.

The SLO gate's P95 comes from these counts, interpolated inside a bucket the way
Prometheus' histogram_quantile does, and over *all* requests by default (successes and
failures alike), as lab/slo.py defines the SLO: the gate, the alerts and the dashboards
agree on what "P95" means. Successful requests only is the second view, asked for by
name (`success_only=True`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from api.buckets import LATENCY_BUCKETS

BOUNDS = (*LATENCY_BUCKETS, float("inf"))


class LatencyTally:
    def __init__(self) -> None:
        self.success = [0] * len(BOUNDS)
        self.failure = [0] * len(BOUNDS)

    def add(self, seconds: float, ok: bool) -> None:
        (self.success if ok else self.failure)[bisect_left(BOUNDS, seconds)] += 1

    def take(self) -> dict[str, list[int]]:
        """The counts since the last take (what a worker sends to the master)."""
        delta = {"success": self.success, "failure": self.failure}
        self.success = [0] * len(BOUNDS)
        self.failure = [0] * len(BOUNDS)
        return delta

    def merge(self, delta: Mapping[str, list[int]]) -> None:
        for kind in ("success", "failure"):
            counts = getattr(self, kind)
            for index, count in enumerate(delta.get(kind, ())):
                counts[index] += count

    def count(self, success_only: bool = False) -> int:
        return sum(self.success) + (0 if success_only else sum(self.failure))

    def quantile(self, q: float, success_only: bool = False) -> float | None:
        counts = (
            self.success
            if success_only
            else [s + f for s, f in zip(self.success, self.failure, strict=True)]
        )
        total = sum(counts)
        if total == 0:
            return None
        rank = q * total
        cumulative = 0
        for index, count in enumerate(counts):
            if cumulative + count >= rank and count:
                upper = BOUNDS[index]
                if upper == float("inf"):
                    # Beyond the top bucket: like Prometheus, report the highest finite bound.
                    return BOUNDS[-2]
                lower = 0.0 if index == 0 else BOUNDS[index - 1]
                return lower + (upper - lower) * (rank - cumulative) / count
            cumulative += count
        return BOUNDS[-2]

    def over_top_bucket(self) -> int:
        return self.success[-1] + self.failure[-1]
