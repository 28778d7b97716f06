"""When a measured result cannot be trusted: the thresholds and the typed flags, defined
once for the load generator's own summary (locust/lab_run.py) and the experiments' judge
(lab/experiments/judge.py).

A flag is a `Flag` value: its `kind` decides (the report trusts a result unless one of its
flags invalidates it), its `message` is for people and is never parsed. Standard library
only: the Locust image copies this file (locust/Dockerfile).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Load-generator CPU (% of one core) above which its latencies inflate (PITFALLS.md).
SATURATED_CPU = 90.0
# A closed-model run whose RPS reaches this share of users / (think time + latency) was
# set by the generator, not by the service.
CEILING_RATIO = 0.9
# An open-model run (or step) that completes less than this share of what its arrival
# clock offered did not sustain the rate: requests piled up.
SUSTAINED_RATIO = 0.95
# Client and server counts of successful predictions may differ by this share (requests
# in flight at the window's edges) before the window is suspect.
COUNT_TOLERANCE = 0.01


class FlagKind(StrEnum):
    GENERATOR_SATURATED = "generator-saturated"
    CLOSED_MODEL_CEILING = "closed-model-ceiling"
    NOT_SUSTAINED = "not-sustained"
    OVER_TOP_BUCKET = "over-top-bucket"
    COUNTS_DIFFER = "counts-differ"
    REPLICA_DOWN = "replica-down"
    # A flag stored before flags had kinds (an older results.json): its kind is unknown,
    # so it counts against trust.
    UNCLASSIFIED = "unclassified"


# Flags that make a measurement wrong, not merely limited in what it says: a
# closed-model ceiling or a rate not sustained are findings about the load, and the
# numbers measured under them are still right.
INVALIDATING = frozenset(
    {
        FlagKind.GENERATOR_SATURATED,
        FlagKind.OVER_TOP_BUCKET,
        FlagKind.COUNTS_DIFFER,
        FlagKind.REPLICA_DOWN,
        FlagKind.UNCLASSIFIED,
    }
)


@dataclass(frozen=True, order=True)
class Flag:
    """Why a result cannot be fully trusted."""

    kind: FlagKind
    message: str

    @property
    def invalidates(self) -> bool:
        return self.kind in INVALIDATING

    def at_rate(self, rate: float) -> Flag:
        """The same flag, said of one step of a capacity search."""
        return Flag(self.kind, f"{rate:g}/s: {self.message}")

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "message": self.message}

    @classmethod
    def from_stored(cls, data: dict[str, Any] | str) -> Flag:
        if isinstance(data, str):
            return cls(FlagKind.UNCLASSIFIED, data)
        return cls(FlagKind(data["kind"]), str(data["message"]))

    def __str__(self) -> str:
        return self.message


def sustained(achieved_rate: float, offered_rate: float) -> bool:
    """Open model: the client completed (nearly) every task the arrival clock offered."""
    return achieved_rate >= SUSTAINED_RATIO * offered_rate


def generator_saturated(cpu_max: float | None) -> Flag | None:
    if (cpu_max or 0.0) <= SATURATED_CPU:
        return None
    return Flag(
        FlagKind.GENERATOR_SATURATED,
        f"load generator saturated ({cpu_max:.0f}% CPU): over {SATURATED_CPU:.0f}%, client "
        "latencies are inflated, and the service may not be the limit",
    )


def closed_model_ceiling(rps: float, ceiling: float | None) -> Flag | None:
    if not ceiling or rps < CEILING_RATIO * ceiling:
        return None
    return Flag(
        FlagKind.CLOSED_MODEL_CEILING,
        f"closed-model ceiling reached ({rps:.0f} of {ceiling:.0f} RPS = users / (think "
        "time + latency)): this RPS is the offered load, not the capacity (an open shape "
        "with an arrival rate measures capacity)",
    )


def not_sustained(offered_rate: float | None, achieved_rate: float) -> Flag | None:
    if not offered_rate or sustained(achieved_rate, offered_rate):
        return None
    return Flag(
        FlagKind.NOT_SUSTAINED,
        f"offered {offered_rate:.0f}/s, completed {achieved_rate:.0f}/s: requests piled up, "
        "or the generator could not keep pace",
    )


def over_top_bucket(where: str) -> Flag:
    """Latencies above the histograms' top bucket (60 s), `where` saying whose."""
    return Flag(
        FlagKind.OVER_TOP_BUCKET,
        f"latency in the top bucket (> 60 s) {where}: quantiles there are lower bounds",
    )


def counts_differ(client: float | None, server: float | None) -> Flag | None:
    if not client or not server:
        return None
    gap = abs(client - server) / max(client, server)
    if gap <= COUNT_TOLERANCE:
        return None
    return Flag(
        FlagKind.COUNTS_DIFFER,
        f"client and server counts differ: {client:.0f} successful predictions seen by "
        f"Locust, {server:.0f} by the replicas ({gap:.1%})",
    )


def replica_down(detail: str) -> Flag:
    return Flag(
        FlagKind.REPLICA_DOWN,
        f"replica down during the window ({detail}): down, or too saturated to answer "
        "Prometheus' scrapes in time",
    )
