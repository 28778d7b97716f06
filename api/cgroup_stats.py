"""Read the replica's own cgroup: CPU quota and throttling, memory limit and usage.

Docker and the native runtime both limit a replica through its cgroup, so the replica can
report the limits it really runs under and how often the CPU quota throttled it, the best
explanation of tail latency under a quota. Works with cgroup v2 and v1; where no cgroup is
readable, the collector exports the declared limits only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CgroupPaths:
    """Directories of one process's cgroup: one for v2, per controller for v1."""

    version: int
    cpu: Path
    memory: Path

    @classmethod
    def of_process(cls, pid: int | str = "self", root: Path = CGROUP_ROOT) -> CgroupPaths | None:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        v1: dict[str, str] = {}
        v2: str | None = None
        for line in lines:
            hierarchy, controllers, path = line.split(":", 2)
            if hierarchy == "0" and controllers == "":
                v2 = path
            for controller in controllers.split(","):
                v1[controller] = path
        if "cpu" in v1 and "memory" in v1:
            cpu = _existing(root / "cpu", v1["cpu"]) or _existing(root / "cpu,cpuacct", v1["cpu"])
            memory = _existing(root / "memory", v1["memory"])
            if cpu and memory:
                return cls(1, cpu, memory)
        if v2 is not None:
            unified = root if (root / "cgroup.controllers").exists() else root / "unified"
            directory = _existing(unified, v2)
            if directory and (directory / "cpu.stat").exists():
                return cls(2, directory, directory)
        return None


def _existing(mount: Path, path: str) -> Path | None:
    directory = mount / path.lstrip("/")
    return directory if directory.is_dir() else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _keyed(path: Path) -> dict[str, int]:
    text = _read(path) or ""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


@dataclass(frozen=True)
class CgroupSnapshot:
    cpu_limit_cores: float | None
    memory_limit_bytes: int | None
    memory_usage_bytes: int | None
    periods: int
    throttled_periods: int
    throttled_seconds: float
    oom_kills: int


def read_snapshot(paths: CgroupPaths) -> CgroupSnapshot:
    if paths.version == 2:
        quota, _, period = (_read(paths.cpu / "cpu.max") or "max 100000").partition(" ")
        cpu_limit = None if quota == "max" else int(quota) / int(period or 100000)
        mem_max = _read(paths.memory / "memory.max")
        memory_limit = None if mem_max in (None, "max") else int(mem_max)
        usage = _read(paths.memory / "memory.current")
        stat = _keyed(paths.cpu / "cpu.stat")
        throttled = stat.get("throttled_usec", 0) / 1e6
        oom = _keyed(paths.memory / "memory.events").get("oom_kill", 0)
    else:
        quota_text = _read(paths.cpu / "cpu.cfs_quota_us") or "-1"
        period_text = _read(paths.cpu / "cpu.cfs_period_us") or "100000"
        cpu_limit = None if int(quota_text) <= 0 else int(quota_text) / int(period_text)
        limit_text = _read(paths.memory / "memory.limit_in_bytes")
        memory_limit = (
            None if limit_text is None or int(limit_text) >= _V1_UNLIMITED else int(limit_text)
        )
        usage = _read(paths.memory / "memory.usage_in_bytes")
        stat = _keyed(paths.cpu / "cpu.stat")
        throttled = stat.get("throttled_time", 0) / 1e9
        oom = _keyed(paths.memory / "memory.oom_control").get("oom_kill", 0)
    return CgroupSnapshot(
        cpu_limit_cores=cpu_limit,
        memory_limit_bytes=memory_limit,
        memory_usage_bytes=int(usage) if usage and usage.isdigit() else None,
        periods=stat.get("nr_periods", 0),
        throttled_periods=stat.get("nr_throttled", 0),
        throttled_seconds=throttled,
        oom_kills=oom,
    )


def host_memory_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class ReplicaResourceCollector(Collector):
    """Exports the limits a replica runs under and its cgroup's throttling and memory.

    The limit gauges always exist, so "CPU % of limit" has a denominator everywhere: the
    cgroup's quota when there is one, else the declared limit, else the host's size. The
    cgroup's own counters are exported only when it enforces a limit.
    """

    def __init__(self, declared_cpus: float | None, declared_memory: int | None) -> None:
        self._declared_cpus = declared_cpus
        self._declared_memory = declared_memory
        self._paths = CgroupPaths.of_process()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snapshot = read_snapshot(self._paths) if self._paths else None
        cpu_limit = (snapshot and snapshot.cpu_limit_cores) or self._declared_cpus
        memory_limit = (snapshot and snapshot.memory_limit_bytes) or self._declared_memory
        yield GaugeMetricFamily(
            "replica_cpu_limit_cores",
            "CPU cores this replica may use (cgroup quota, declared limit or host cores)",
            value=cpu_limit or float(os.cpu_count() or 1),
        )
        yield GaugeMetricFamily(
            "replica_memory_limit_bytes",
            "Memory this replica may use (cgroup limit, declared limit or host memory)",
            value=memory_limit or host_memory_bytes(),
        )
        yield GaugeMetricFamily(
            "replica_limits_enforced",
            "1 when a cgroup enforces a CPU or memory limit on this replica",
            value=1.0
            if snapshot and (snapshot.cpu_limit_cores or snapshot.memory_limit_bytes)
            else 0.0,
        )
        # Without a limit the process may sit in a cgroup it shares (a session's, a
        # service manager's): its counters would describe others too.
        if snapshot is None or not (snapshot.cpu_limit_cores or snapshot.memory_limit_bytes):
            return
        if snapshot.memory_usage_bytes is not None:
            yield GaugeMetricFamily(
                "replica_cgroup_memory_usage_bytes",
                "Memory charged to the replica's cgroup, page cache included",
                value=snapshot.memory_usage_bytes,
            )
        yield CounterMetricFamily(
            "replica_cpu_cfs_periods",
            "CFS enforcement periods of the replica's cgroup",
            value=snapshot.periods,
        )
        yield CounterMetricFamily(
            "replica_cpu_cfs_throttled_periods",
            "CFS periods in which the replica's cgroup was throttled",
            value=snapshot.throttled_periods,
        )
        yield CounterMetricFamily(
            "replica_cpu_cfs_throttled_seconds",
            "Time the replica's cgroup spent throttled by its CPU quota",
            value=snapshot.throttled_seconds,
        )
        yield CounterMetricFamily(
            "replica_oom_kills",
            "Processes of the replica's cgroup killed for exceeding its memory limit",
            value=snapshot.oom_kills,
        )
