"""The stored results of an experiment: results.json (everything) and results.csv (a row
per measured target window), rewritten after each deployment so an interrupted run keeps
what it measured."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.experiments.measure import Measurement
from lab.trust import Flag

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"


@dataclass
class Step:
    """One rate of a capacity search."""

    rate: float
    measurement: Measurement
    passed: bool
    sustained: bool
    # A bisection run between two steps of the search.
    refined: bool = False

    @property
    def ok(self) -> bool:
        return self.passed and self.sustained

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "measurement": self.measurement.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**{**data, "measurement": Measurement.from_dict(data["measurement"])})


@dataclass
class ConfigResult:
    label: str
    replicas: int
    cpus: float | None
    memory: int | None
    target: list[Measurement] = field(default_factory=list)
    target_summaries: list[dict[str, Any]] = field(default_factory=list)
    meets_slo: bool | None = None
    flags: list[Flag] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    knee_rps: float | None = None
    # The lowest rate that failed: the knee lies in [knee_rps, knee_upper_rps). None when
    # every rate tried was sustained, and knee_rps is only a lower bound.
    knee_upper_rps: float | None = None
    capacity_flags: list[Flag] = field(default_factory=list)
    failover: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = [m.to_dict() for m in self.target]
        data["steps"] = [s.to_dict() for s in self.steps]
        data["flags"] = [f.to_dict() for f in self.flags]
        data["capacity_flags"] = [f.to_dict() for f in self.capacity_flags]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        data = dict(data)
        data["target"] = [Measurement.from_dict(m) for m in data["target"]]
        data["steps"] = [Step.from_dict(s) for s in data["steps"]]
        data["flags"] = [Flag.from_stored(f) for f in data.get("flags", [])]
        data["capacity_flags"] = [Flag.from_stored(f) for f in data.get("capacity_flags", [])]
        return cls(**data)


@dataclass
class ExperimentResults:
    name: str
    plan: dict[str, Any]
    runtime: str
    machine: dict[str, Any]
    started: float
    finished: float | None = None
    status: str = "running"
    configs: list[ConfigResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "configs": [c.to_dict() for c in self.configs]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentResults:
        data = dict(data)
        data["configs"] = [ConfigResult.from_dict(c) for c in data["configs"]]
        return cls(**data)


def save(results: ExperimentResults, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{RESULTS_JSON}.tmp"
    tmp.write_text(json.dumps(results.to_dict(), indent=2))
    tmp.replace(directory / RESULTS_JSON)
    _write_csv(results, directory / RESULTS_CSV)


def load(directory: Path) -> ExperimentResults:
    return ExperimentResults.from_dict(json.loads((directory / RESULTS_JSON).read_text()))


CSV_COLUMNS = [
    "config", "replicas", "cpus", "memory_bytes", "repeat", "run_id", "window_s",
    "client_rps", "edge_rps", "server_rps", "client_error_ratio", "server_error_ratio",
    "errors_app", "errors_proxy", "errors_client",
    "client_p50_s", "client_p95_s", "client_p99_s", "client_p95_success_s",
    "server_p95_s", "model_p95_s", "cpu_of_limit_max", "throttled_max", "memory_peak_bytes_max",
    "generator_cpu_max", "meets_slo", "knee_rps", "flags",
]  # fmt: skip


def _write_csv(results: ExperimentResults, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for config in results.configs:
            for repeat, m in enumerate(config.target, start=1):
                client, server = m.layers["client"], m.layers["server"]
                writer.writerow(
                    {
                        "config": config.label,
                        "replicas": config.replicas,
                        "cpus": config.cpus,
                        "memory_bytes": config.memory,
                        "repeat": repeat,
                        "run_id": m.run_id,
                        "window_s": round(m.seconds, 1),
                        "client_rps": client.rps,
                        "edge_rps": m.layers["edge"].rps,
                        "server_rps": server.rps,
                        "client_error_ratio": client.error_ratio,
                        "server_error_ratio": server.error_ratio,
                        "errors_app": m.errors_by_origin.get("app"),
                        "errors_proxy": m.errors_by_origin.get("proxy"),
                        "errors_client": m.errors_by_origin.get("client"),
                        "client_p50_s": client.p50_s,
                        "client_p95_s": client.p95_s,
                        "client_p99_s": client.p99_s,
                        "client_p95_success_s": client.p95_success_s,
                        "server_p95_s": server.p95_s,
                        "model_p95_s": m.layers["model"].p95_s,
                        "cpu_of_limit_max": _max(r.cpu_of_limit for r in m.replicas),
                        "throttled_max": _max(r.throttled_ratio for r in m.replicas),
                        "memory_peak_bytes_max": _max(r.memory_peak_bytes for r in m.replicas),
                        "generator_cpu_max": m.generator_cpu_max,
                        "meets_slo": config.meets_slo,
                        "knee_rps": config.knee_rps,
                        "flags": " | ".join(str(f) for f in config.flags),
                    }
                )


def _max(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
