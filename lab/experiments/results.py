"""The stored results of an experiment: results.json (everything the report needs),
results.csv (a row per measured window) and raw/ (the answers Prometheus gave and the
host's CPU samples), rewritten after each deployment so an interrupted run keeps what it
measured."""

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
    """One arrival rate of a capacity search, measured in repeated windows."""

    rate: float
    windows: list[Measurement]
    # Decided on the windows' medians (lab/experiments/judge.py).
    passed: bool
    sustained: bool
    flags: list[Flag] = field(default_factory=list)
    # A bisection run between two steps of the search.
    refined: bool = False
    # The repeats disagreed and the step was measured once more (its windows added).
    remeasured: bool = False

    @property
    def ok(self) -> bool:
        return self.passed and self.sustained

    @property
    def trusted(self) -> bool:
        return not any(flag.invalidates for flag in self.flags)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "windows": [m.to_dict() for m in self.windows],
            "flags": [f.to_dict() for f in self.flags],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            **{
                **data,
                "windows": [Measurement.from_dict(m) for m in data["windows"]],
                "flags": [Flag.from_stored(f) for f in data.get("flags", [])],
            }
        )


@dataclass
class ConfigResult:
    label: str
    replicas: int
    cpus: float | None
    memory: int | None
    steps: list[Step] = field(default_factory=list)
    knee_rps: float | None = None
    # The lowest rate that failed: the knee lies in [knee_rps, knee_upper_rps). None when
    # every rate tried was sustained, and knee_rps is only a lower bound.
    knee_upper_rps: float | None = None
    # The verdict: the step at the target's arrival rate sustained within the SLO.
    meets_target: bool | None = None
    # Flags of the deployment as a whole (the host's budget).
    flags: list[Flag] = field(default_factory=list)
    # The workshop's closed-model view: shown, never deciding.
    workshop: list[Measurement] = field(default_factory=list)
    workshop_flags: list[Flag] = field(default_factory=list)
    failover: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [s.to_dict() for s in self.steps]
        data["workshop"] = [m.to_dict() for m in self.workshop]
        data["flags"] = [f.to_dict() for f in self.flags]
        data["workshop_flags"] = [f.to_dict() for f in self.workshop_flags]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfigResult:
        data = dict(data)
        data["steps"] = [Step.from_dict(s) for s in data["steps"]]
        data["workshop"] = [Measurement.from_dict(m) for m in data.get("workshop", [])]
        data["flags"] = [Flag.from_stored(f) for f in data.get("flags", [])]
        data["workshop_flags"] = [Flag.from_stored(f) for f in data.get("workshop_flags", [])]
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
    # `capacity --target-rps`: the model fitted on earlier knees and its prediction for
    # the deployment this run measured (lab/experiments/predict.py).
    prediction: dict[str, Any] | None = None
    # `engine_lever`: the lever's deployment measured with the lever's service (its
    # baseline is the config of the same label in `configs`).
    engine_lever: ConfigResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "configs": [c.to_dict() for c in self.configs],
            "engine_lever": None if self.engine_lever is None else self.engine_lever.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentResults:
        data = dict(data)
        data["configs"] = [ConfigResult.from_dict(c) for c in data["configs"]]
        lever = data.get("engine_lever")
        data["engine_lever"] = None if lever is None else ConfigResult.from_dict(lever)
        return cls(**data)


def save(results: ExperimentResults, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{RESULTS_JSON}.tmp"
    tmp.write_text(json.dumps(results.to_dict(), indent=1) + "\n")
    tmp.replace(directory / RESULTS_JSON)
    _write_csv(results, directory / RESULTS_CSV)


def load(directory: Path) -> ExperimentResults:
    return ExperimentResults.from_dict(json.loads((directory / RESULTS_JSON).read_text()))


CSV_COLUMNS = [
    "config", "replicas", "cpus", "memory_bytes", "kind", "rate", "window", "run_id",
    "start", "window_s", "offered_rps", "achieved_rps", "predictions_rps", "edge_rps",
    "server_rps", "client_error_ratio", "server_error_ratio", "client_p50_s", "client_p95_s",
    "client_p99_s", "client_p95_success_s", "edge_p95_s", "server_p95_s", "model_p95_s",
    "cpu_of_limit_max", "throttled_max", "memory_peak_bytes_max", "generator_cpu_max",
    "host_busy",
]  # fmt: skip


def _write_csv(results: ExperimentResults, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        # The engine lever's steps follow the matrix's, their kind prefixed "lever-".
        measured = [(c, "") for c in results.configs]
        if results.engine_lever is not None:
            measured.append((results.engine_lever, "lever-"))
        for config, prefix in measured:
            rows: list[tuple[str, float | None, int, Measurement]] = [
                ("workshop-view", None, n, m) for n, m in enumerate(config.workshop, start=1)
            ]
            for step in sorted(config.steps, key=lambda s: s.rate):
                kind = prefix + ("bisection" if step.refined else "step")
                rows += [(kind, step.rate, n, m) for n, m in enumerate(step.windows, start=1)]
            for kind, rate, number, m in rows:
                client, server = m.layers["client"], m.layers["server"]
                writer.writerow(
                    {
                        "config": config.label,
                        "replicas": config.replicas,
                        "cpus": config.cpus,
                        "memory_bytes": config.memory,
                        "kind": kind,
                        "rate": rate,
                        "window": number,
                        "run_id": m.run_id,
                        "start": round(m.start, 3),
                        "window_s": round(m.seconds, 1),
                        "offered_rps": m.offered_rate,
                        "achieved_rps": m.achieved_rate,
                        "predictions_rps": client.rps,
                        "edge_rps": m.layers["edge"].rps,
                        "server_rps": server.rps,
                        "client_error_ratio": client.error_ratio,
                        "server_error_ratio": server.error_ratio,
                        "client_p50_s": client.p50_s,
                        "client_p95_s": client.p95_s,
                        "client_p99_s": client.p99_s,
                        "client_p95_success_s": client.p95_success_s,
                        "edge_p95_s": m.layers["edge"].p95_s,
                        "server_p95_s": server.p95_s,
                        "model_p95_s": m.layers["model"].p95_s,
                        "cpu_of_limit_max": _max(r.cpu_of_limit for r in m.replicas),
                        "throttled_max": _max(r.throttled_ratio for r in m.replicas),
                        "memory_peak_bytes_max": _max(r.memory_peak_bytes for r in m.replicas),
                        "generator_cpu_max": m.generator_cpu_max,
                        "host_busy": m.host_busy,
                    }
                )


def _max(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
