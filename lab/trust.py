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
# A closed-model run whose RPS reaches this share of users / think time (the most its
# users could offer if every answer were instant) was limited by its users, not by the
# service.
CEILING_RATIO = 0.9
# An open-model run (or step) that completes less than this share of the arrivals its
# clock actually drew did not sustain the rate: requests piled up.
SUSTAINED_RATIO = 0.95
# Client and server counts of successful predictions may differ by this share (requests
# in flight at the window's edges) before the window is suspect.
COUNT_TOLERANCE = 0.01
# Measured host CPU (share of all cores, /proc/stat) above which every process on the
# host, the replicas' as well, waited for a core: latencies are the host's, not the
# deployment's.
HOST_BUSY_MAX = 0.9
# Scrapes a target may miss in a window before its rates rest on too few samples (one
# can be lost to the window's alignment with the scrape clock).
SCRAPE_MISSES_MAX = 1
# An inner layer's percentile may exceed the outer one's by this share before it says
# more about bucket interpolation than about the service (an inner layer's latency is a
# part of the outer one's).
INVERSION_TOLERANCE = 0.05


class FlagKind(StrEnum):
    GENERATOR_SATURATED = "generator-saturated"
    # Sum of replica CPU limits, load generator and proxy above the host's cores.
    HOST_OVERCOMMITTED = "host-overcommitted"
    # Measured host CPU near 100 % in the window.
    HOST_SATURATED = "host-saturated"
    CLOSED_MODEL_BOUND = "closed-model-bound"
    ARRIVAL_DEFICIT = "arrival-deficit"
    OVER_TOP_BUCKET = "over-top-bucket"
    SCRAPE_GAP = "scrape-gap"
    PERCENTILE_INVERSION = "percentile-inversion"
    COUNTS_DIFFER = "counts-differ"
    REPLICA_DOWN = "replica-down"
    REPEATS_DISAGREE = "repeats-disagree"
    # A flag stored before flags had kinds (an older results.json): its kind is unknown,
    # so it counts against trust.
    UNCLASSIFIED = "unclassified"


# Flags that make a measurement wrong, not merely limited in what it says. A closed-model
# bound or an arrival deficit are findings about the load (the step failed, or the
# workshop's view was set by its users); an overcommitted host is a risk the measured
# host CPU confirms or not; an inversion is the histograms' interpolation: the numbers
# measured under them are still right.
INVALIDATING = frozenset(
    {
        FlagKind.GENERATOR_SATURATED,
        FlagKind.HOST_SATURATED,
        FlagKind.OVER_TOP_BUCKET,
        FlagKind.SCRAPE_GAP,
        FlagKind.COUNTS_DIFFER,
        FlagKind.REPLICA_DOWN,
        FlagKind.REPEATS_DISAGREE,
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


def closed_model_bound(users: float, think_time_s: float) -> float | None:
    """The most a closed model's users can offer: users / think time, reached only if
    every answer were instant. None without think time (each user then waits only for
    its answers, and the service alone sets the pace).

    Not users / (think time + latency): by Little's law that is the throughput of any
    steady closed run, so comparing a run's RPS with it says nothing."""
    if think_time_s <= 0 or users <= 0:
        return None
    return users / think_time_s


def closed_model_ceiling(rps: float, ceiling: float | None) -> Flag | None:
    """`ceiling` is `closed_model_bound(users, think time)`: a run near it was limited by
    its users (the service answered faster than they asked), not by the service."""
    if not ceiling or rps < CEILING_RATIO * ceiling:
        return None
    return Flag(
        FlagKind.CLOSED_MODEL_BOUND,
        f"closed model at its users' bound ({rps:.0f} of {ceiling:.0f} RPS = users / think "
        "time): the users, not the service, set this RPS; it is no capacity (the open "
        "model measures capacity)",
    )


def generator_saturated(cpu_max: float | None) -> Flag | None:
    if (cpu_max or 0.0) <= SATURATED_CPU:
        return None
    return Flag(
        FlagKind.GENERATOR_SATURATED,
        f"load generator saturated ({cpu_max:.0f}% CPU): over {SATURATED_CPU:.0f}%, client "
        "latencies are inflated, and the service may not be the limit",
    )


def host_overcommitted(
    replica_limits: float | None, generator: float, proxy: float, host_cores: int
) -> Flag | None:
    """Replica limits (None: unlimited), the generator's cores and the proxy's measured
    cores against the host's: above it, the limits cannot all be honoured at once."""
    if replica_limits is None:
        return Flag(
            FlagKind.HOST_OVERCOMMITTED,
            f"replicas without CPU limits share {host_cores} cores with the load generator "
            "and the proxy: the deployment's own CPU is not defined",
        )
    budget = replica_limits + generator + proxy
    if budget <= host_cores:
        return None
    return Flag(
        FlagKind.HOST_OVERCOMMITTED,
        f"host overcommitted: replica limits {replica_limits:g} + load generator "
        f"{generator:.2f} + proxy {proxy:.2f} = {budget:.2f} cores on a {host_cores}-core "
        "host; the replicas get their limits only while the others are idle",
    )


def host_saturated(busy_share: float | None, host_cores: int) -> Flag | None:
    """`busy_share`: the host's CPU busy over the window (/proc/stat), 0-1 of all cores."""
    if busy_share is None or busy_share < HOST_BUSY_MAX:
        return None
    return Flag(
        FlagKind.HOST_SATURATED,
        f"host CPU {busy_share:.0%} busy over the window ({host_cores} cores, /proc/stat; "
        f"over {HOST_BUSY_MAX:.0%}): every process waited for a core, so latencies are the "
        "host's, not the deployment's",
    )


def not_sustained(offered_rate: float | None, achieved_rate: float) -> Flag | None:
    """The arrival deficit: fewer requests completed than the arrival clock drew."""
    if not offered_rate or sustained(achieved_rate, offered_rate):
        return None
    return Flag(
        FlagKind.ARRIVAL_DEFICIT,
        f"arrival deficit: offered {offered_rate:.1f}/s, completed {achieved_rate:.1f}/s "
        f"(< {SUSTAINED_RATIO:.0%}): requests piled up, or the generator could not keep pace",
    )


def over_top_bucket(where: str) -> Flag:
    """Latencies above a histogram's top bucket, `where` saying whose and which bound."""
    return Flag(
        FlagKind.OVER_TOP_BUCKET,
        f"latency above the top bucket {where}: quantiles there are lower bounds",
    )


def scrape_gap(target: str, missing: int, expected: int) -> Flag | None:
    if missing <= SCRAPE_MISSES_MAX:
        return None
    return Flag(
        FlagKind.SCRAPE_GAP,
        f"scrape gap: {target} has {expected - missing} of {expected} samples in the window "
        "(too busy to answer, or down): its rates rest on too few samples",
    )


def percentile_inversion(
    inner: str, inner_s: float | None, outer: str, outer_s: float | None
) -> Flag | None:
    """An inner layer's P95 (model inside server inside proxy) above the outer one's."""
    if inner_s is None or outer_s is None or inner_s <= outer_s * (1 + INVERSION_TOLERANCE):
        return None
    return Flag(
        FlagKind.PERCENTILE_INVERSION,
        f"P95 of the {inner} ({inner_s * 1000:,.0f} ms) above the {outer}'s "
        f"({outer_s * 1000:,.0f} ms), which contains it: both are interpolated inside wide "
        "buckets, read them as ranges",
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


def repeats_disagree(detail: str) -> Flag:
    return Flag(
        FlagKind.REPEATS_DISAGREE,
        f"repeats disagree even after one re-measurement ({detail}): the host's noise is "
        "larger than the effect, the median decides but is uncertain",
    )
