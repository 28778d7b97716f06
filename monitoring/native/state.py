"""The run folder's state.json: what the native runtime started, read and written under a lock.

Every command (`up`, `scale`, `status`, `down`) and the supervisor work on this one record,
so `down` can stop exactly what was started, by pid, even after the launcher crashed.
A pid is only trusted together with the process's start time, so a reused pid is never
mistaken for one of ours.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

STATE_FILE = "state.json"
LOCK_FILE = "lock"


@dataclass
class Proc:
    """A process we started: pid plus start time identify it."""

    pid: int
    create_time: float
    log: str

    @classmethod
    def of(cls, pid: int, log: Path) -> Proc:
        return cls(pid=pid, create_time=psutil.Process(pid).create_time(), log=str(log))

    def handle(self) -> psutil.Process | None:
        """The live process, or None when it exited (zombies count as exited)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.05:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.handle() is not None


@dataclass
class Component:
    name: str
    port: int
    proc: Proc


@dataclass
class Replica:
    name: str
    port: int
    cpus: float | None
    memory: int | None
    proc: Proc
    cgroup: dict[str, str] = field(default_factory=dict)
    status: str = "running"
    restarts: int = 0
    last_exit: str = ""
    oom_kills: int = 0
    started_at: float = field(default_factory=time.time)
    # The API_* and OTEL_* settings it was first started with, kept for its restarts.
    settings_env: dict[str, str] | None = None


@dataclass
class State:
    run_dir: str
    ports: dict[str, int]
    label: str
    replicas_wanted: int
    cpus: float | None
    memory: int | None
    cgroup_mode: str
    cgroup_note: str
    cgroup_roots: dict[str, str] = field(default_factory=dict)
    components: dict[str, Component] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    next_replica: int = 1
    started_at: float = field(default_factory=time.time)
    scrape_interval_seconds: float = 2.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        """Read a state file, tolerating fields a newer or older launcher wrote: a stack
        started before an upgrade can still be inspected and stopped."""
        components = {
            name: Component(name=c["name"], port=c["port"], proc=_known(Proc, c["proc"]))
            for name, c in data.get("components", {}).items()
        }
        replicas = [
            _known(Replica, {**r, "proc": _known(Proc, r["proc"])})
            for r in data.get("replicas", [])
        ]
        return _known(cls, {**data, "components": components, "replicas": replicas})

    def serving(self) -> list[Replica]:
        """Replicas that should receive traffic and be scraped."""
        return [r for r in self.replicas if r.status == "running"]

    def all_procs(self) -> list[tuple[str, Proc]]:
        procs = [(c.name, c.proc) for c in self.components.values()]
        procs += [(r.name, r.proc) for r in self.replicas]
        return procs


def _known(kind: type[Any], data: dict[str, Any]) -> Any:
    """Build a dataclass from the keys it knows; the others are ignored."""
    names = {f.name for f in fields(kind)}
    return kind(**{key: value for key, value in data.items() if key in names})


def read_state(run_dir: Path) -> State | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    return State.from_dict(json.loads(path.read_text()))


def write_state(run_dir: Path, state: State | None) -> None:
    path = run_dir / STATE_FILE
    if state is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    tmp.replace(path)


@contextlib.contextmanager
def run_lock(run_dir: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold the run folder's lock; yields False when `blocking` is off and it is taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / LOCK_FILE).open("a") as handle:
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_event(run_dir: Path, message: str) -> None:
    """One line in events.log: what the runtime did or noticed, with a timestamp."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with (run_dir / "events.log").open("a") as handle:
        handle.write(f"{stamp} {message}\n")
        handle.flush()
        os.fsync(handle.fileno())
