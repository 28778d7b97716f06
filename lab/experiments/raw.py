"""The raw series a run read, kept beside its results so every number can be rebuilt.

`RecordingPrometheus` answers the judge's queries from Prometheus and keeps each answer
(query, time, samples); `ReplayPrometheus` answers the same queries from that record,
offline, so a stored window can be measured again and compared with results.json.
`HostCpu` samples /proc/stat once a second: the host's measured CPU, which Prometheus
does not scrape in the native runtime.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from monitoring.prom import Prometheus, Sample

RAW_DIR = "raw"
QUERIES = "queries.jsonl.gz"
HOST_CPU = "host_cpu.json"


def _round(value: float) -> float:
    # Query times are floats computed by the runner; rounded once so the replay's key is
    # the record's key whatever the float's last digits.
    return round(value, 3)


class RecordingPrometheus:
    """A Prometheus client that remembers every instant query it answered."""

    def __init__(self, prometheus: Prometheus) -> None:
        self.prometheus = prometheus
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def query(self, promql: str, time: float | None = None) -> list[Sample]:
        at = None if time is None else _round(time)
        samples = self.prometheus.query(promql, time=at)
        with self._lock:
            self.records.append(
                {
                    "query": promql,
                    "time": at,
                    "samples": [{"labels": s.labels, "value": s.value} for s in samples],
                }
            )
        return samples

    def save(self, directory: Path) -> None:
        folder = directory / RAW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{QUERIES}.tmp"
        with self._lock:
            lines = [json.dumps(r, sort_keys=True) for r in self.records]
        # mtime=0: the same records make the same bytes (the committed example is compared).
        with gzip.GzipFile(tmp, "wb", mtime=0) as handle:
            handle.write(("\n".join(lines) + "\n").encode())
        tmp.replace(folder / QUERIES)


class ReplayPrometheus:
    """Answers the recorded queries, offline; an unrecorded query is an error."""

    def __init__(self, directory: Path) -> None:
        self.answers: dict[tuple[str, float | None], list[Sample]] = {}
        with gzip.open(directory / RAW_DIR / QUERIES, "rt") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    samples = [Sample(s["labels"], s["value"]) for s in record["samples"]]
                    self.answers[(record["query"], record["time"])] = samples

    def query(self, promql: str, time: float | None = None) -> list[Sample]:
        key = (promql, None if time is None else _round(time))
        if key not in self.answers:
            raise KeyError(f"not in the raw series: {promql} at {time}")
        return self.answers[key]


def read_proc_stat(path: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot; None where /proc/stat is absent."""
    try:
        first = path.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class HostCpu:
    """The host's CPU, sampled once a second from /proc/stat by a daemon thread."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval = interval_s
        self.cores = os.cpu_count() or 1
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            reading = read_proc_stat()
            if reading is not None:
                self.samples.append((round(time.time(), 3), *reading))
            if self._stop.wait(self.interval):
                return

    def start(self) -> HostCpu:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def busy_share(self, start: float, end: float) -> float | None:
        return busy_share(self.samples, start, end)

    def save(self, directory: Path) -> None:
        folder = directory / RAW_DIR
        folder.mkdir(parents=True, exist_ok=True)
        data = {"cores": self.cores, "samples": list(self.samples)}
        (folder / HOST_CPU).write_text(json.dumps(data))


def busy_share(samples: list[tuple[float, int, int]], start: float, end: float) -> float | None:
    """Share of all cores busy between the first sample at or after `start` and the last
    at or before `end` (None when the window holds fewer than two samples)."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2:
        return None
    (_, busy0, total0), (_, busy1, total1) = inside[0], inside[-1]
    if total1 <= total0:
        return None
    return (busy1 - busy0) / (total1 - total0)
