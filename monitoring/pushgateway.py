"""Load-generator groups in the Pushgateway: how they are named, and which ones are dead.

Every Locust process pushes its registry as one group: job="locust", with the run id and
the process's instance name as the rest of the grouping key (`grouping_key`). The
Pushgateway keeps a group until someone deletes it, so a generator killed with SIGKILL (or
crashed) would leave its last numbers scraped as current forever. Each group therefore
carries what it takes to judge whether its pusher is still alive (`add_liveness_metrics`):

- a time to live, `locust_push_ttl_seconds`: the pusher promises a push at least that often
  while it lives. The Pushgateway stamps every group with `push_time_seconds` on its own
  clock, and the `Date` header of its answer gives that clock's time now, so "not pushed
  for longer than its TTL" means the same on any host or container, with no clock skew;
- the pusher's identity, `locust_pusher_info{boot_id, pid_namespace, pid, start_time}`:
  a judge in the same kernel boot and PID namespace (the native stack, a run on the same
  host) knows at once that a process is gone, without waiting for the TTL.

A group is dead when its TTL has passed, or when its pusher is verifiably gone.
`remove_dead_groups` deletes the dead groups of one job and leaves everything else alone.

This module is imported by the Locust listener (and copied into the Locust image), so it
needs nothing beyond the standard library, prometheus_client and psutil.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import delete_from_gateway

JOB = "locust"
TTL_METRIC = "locust_push_ttl_seconds"
IDENTITY_METRIC = "locust_pusher_info"
# A live pusher may miss this many pushes in a row (a slow or restarting Pushgateway)
# before its group counts as dead.
MISSED_PUSHES = 3
# Groups pushed by code that predates the TTL metric: their pushers pushed every 5 s.
DEFAULT_TTL_SECONDS = 60.0
# Process start times are compared to this precision: psutil derives them from clock
# ticks since boot, the same way in every process that reads them.
START_TIME_TOLERANCE_SECONDS = 0.5


class PushgatewayError(Exception):
    """The Pushgateway did not answer, or answered something this module cannot read."""


def grouping_key(run_id: str, instance: str) -> dict[str, str]:
    """The grouping key of one Locust process's group (the job is `JOB`)."""
    return {"run_id": run_id, "instance": instance}


def ttl_seconds(push_interval: float, linger: float, push_timeout: float) -> float:
    """How long a live pusher may go without a successful push.

    `MISSED_PUSHES` intervals, plus the linger after the final push (the group must survive
    until Prometheus scrapes the final state), plus one push's timeout.
    """
    return MISSED_PUSHES * push_interval + linger + push_timeout


@dataclass(frozen=True)
class PusherIdentity:
    """What identifies a process within one kernel boot: its PID namespace, PID and start."""

    boot_id: str
    pid_namespace: str
    pid: int
    start_time: float

    @classmethod
    def of_this_process(cls) -> PusherIdentity | None:
        """None where the kernel does not tell (not Linux): the TTL alone then decides."""
        try:
            boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            namespace = str(Path("/proc/self/ns/pid").readlink())
            start = psutil.Process().create_time()
        except (OSError, psutil.Error):
            return None
        return cls(boot_id, namespace, os.getpid(), start)

    def labels(self) -> dict[str, str]:
        return {
            "boot_id": self.boot_id,
            "pid_namespace": self.pid_namespace,
            "pid": str(self.pid),
            "start_time": f"{self.start_time:.2f}",
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> PusherIdentity | None:
        try:
            return cls(
                labels["boot_id"],
                labels["pid_namespace"],
                int(labels["pid"]),
                float(labels["start_time"]),
            )
        except (KeyError, ValueError):
            return None

    def shares_pids_with(self, other: PusherIdentity | None) -> bool:
        """True when a PID of this identity means the same process to `other`."""
        return (
            other is not None
            and self.boot_id == other.boot_id
            and self.pid_namespace == other.pid_namespace
        )

    def process_exists(self) -> bool:
        """Whether this PID still runs the process that started at `start_time`.

        Only meaningful where `shares_pids_with` holds for the process asking.
        """
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            started = process.create_time()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return False
        except psutil.AccessDenied:
            # The process exists and belongs to someone else: alive as far as we can tell.
            return True
        return abs(started - self.start_time) <= START_TIME_TOLERANCE_SECONDS


def add_liveness_metrics(registry: CollectorRegistry, ttl: float) -> None:
    """Put the TTL and this process's identity into the registry it pushes."""
    Gauge(
        TTL_METRIC,
        "A push older than this means the pushing process is gone: its group is deleted",
        registry=registry,
    ).set(ttl)
    identity = PusherIdentity.of_this_process()
    if identity is not None:
        labels = identity.labels()
        Gauge(
            IDENTITY_METRIC,
            "The pushing process (kernel boot, PID namespace, PID, start time), so a process "
            "on the same host can tell at once that it is gone",
            list(labels),
            registry=registry,
        ).labels(**labels).set(1)


class Cause(StrEnum):
    """Why a group counts as dead."""

    PROCESS_GONE = "its process is gone"
    SILENT = "no push within its time to live"


@dataclass(frozen=True)
class Group:
    """One group as the Pushgateway lists it."""

    labels: dict[str, str]
    pushed_at: float | None
    ttl: float | None
    identity: PusherIdentity | None

    @property
    def job(self) -> str:
        return self.labels.get("job", "")

    @property
    def key(self) -> dict[str, str]:
        """The grouping key without the job, as `delete_from_gateway` takes it."""
        return {name: value for name, value in self.labels.items() if name != "job"}

    def death(self, now: float, here: PusherIdentity | None, default_ttl: float) -> Cause | None:
        """Why this group is dead at `now` (the Pushgateway's clock), or None if it lives."""
        if (
            self.identity is not None
            and self.identity.shares_pids_with(here)
            and not self.identity.process_exists()
        ):
            return Cause.PROCESS_GONE
        ttl = self.ttl if self.ttl is not None else default_ttl
        if self.pushed_at is not None and now - self.pushed_at > ttl:
            return Cause.SILENT
        return None

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> Group:
        def first(family: str) -> dict[str, Any] | None:
            metrics = (entry.get(family) or {}).get("metrics") or []
            return metrics[0] if metrics else None

        def number(family: str) -> float | None:
            sample = first(family)
            try:
                return float(sample["value"]) if sample else None
            except (KeyError, TypeError, ValueError):
                return None

        pushed_at = number("push_time_seconds")
        info = first(IDENTITY_METRIC)
        return cls(
            labels={str(k): str(v) for k, v in (entry.get("labels") or {}).items()},
            # The Pushgateway writes 0 for a group that was never pushed successfully.
            pushed_at=pushed_at or None,
            ttl=number(TTL_METRIC),
            identity=PusherIdentity.from_labels(info.get("labels") or {}) if info else None,
        )


@dataclass(frozen=True)
class RemovedGroup:
    labels: dict[str, str]
    cause: Cause
    silent_seconds: float | None

    def describe(self) -> str:
        name = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        since = (
            "" if self.silent_seconds is None else f", last push {self.silent_seconds:.0f} s ago"
        )
        return f"{name} ({self.cause}{since})"


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url if "://" in url else f"http://{url}"


def list_groups(pushgateway_url: str, timeout: float = 3.0) -> tuple[list[Group], float]:
    """Every group the Pushgateway holds, and its clock's time now (from its Date header)."""
    url = f"{_base(pushgateway_url)}/api/v1/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
            date = response.headers.get("Date")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise PushgatewayError(
            f"cannot list the groups of the Pushgateway at {url}: {exc}"
        ) from exc
    try:
        # The Date header has one-second resolution, so `now` may be up to a second behind:
        # that only makes a group look younger, never dead too early.
        now = parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        now = time.time()
    entries = body.get("data") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise PushgatewayError(f"unexpected answer from {url}: no list of groups in 'data'")
    return [Group.from_api(entry) for entry in entries if isinstance(entry, dict)], now


def remove_dead_groups(
    pushgateway_url: str,
    job: str = JOB,
    timeout: float = 3.0,
    default_ttl: float = DEFAULT_TTL_SECONDS,
) -> list[RemovedGroup]:
    """Delete the groups of `job` whose pusher is dead; return what was deleted.

    A group whose pusher is verifiably gone (same kernel boot and PID namespace as the
    caller) is deleted at once; any other group once it has not been pushed for longer
    than its TTL (`default_ttl` when it carries none). Groups of other jobs, and live
    groups, are never touched. Raises PushgatewayError when the Pushgateway cannot be read
    or refuses a deletion.
    """
    groups, now = list_groups(pushgateway_url, timeout)
    here = PusherIdentity.of_this_process()
    removed = []
    for group in groups:
        if group.job != job:
            continue
        cause = group.death(now, here, default_ttl)
        if cause is None:
            continue
        try:
            delete_from_gateway(
                _base(pushgateway_url), job=job, grouping_key=group.key, timeout=timeout
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise PushgatewayError(
                f"cannot delete the dead group {group.labels} from the Pushgateway at "
                f"{pushgateway_url}: {exc}"
            ) from exc
        silent = None if group.pushed_at is None else max(now - group.pushed_at, 0.0)
        removed.append(RemovedGroup(group.labels, cause, silent))
    return removed
