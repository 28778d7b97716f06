"""The run folder's state.json: what the native runtime started, read and written under a lock.

Every command (`up`, `scale`, `status`, `down`) and the supervisor work on this one record.
A pid is only trusted together with the process's start time, so a reused pid is never
mistaken for one of ours. The record is written as soon as a process is spawned, but it is
not the only way to find what a run started: every spawned process also carries the run
folder in its environment (`processes.find_run_processes`), so a missing or corrupt
state.json still lets `down` stop everything.
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

from lab.errors import LabError

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


class StateError(LabError):
    """state.json exists but cannot be read: its processes must be found another way."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"{path} is unreadable ({reason}). `make down` stops every process this run "
            "folder started (it finds them without this file) and removes it; then `make up`"
        )


# What the supervisor knows of a watched process:
#   starting  spawned, not yet answering its readiness check (up to the ready timeout);
#   running   ready (a replica: serving and scraped);
#   crashed   exited, waiting for its restart at `next_try`;
#   dead      exited and left down (LAB_RESTART=no);
#   leaving   a replica being retired by `scale` (drained, then stopped).
STATUSES = ("starting", "running", "crashed", "dead", "leaving")


@dataclass(kw_only=True)
class Watched:
    """Supervision record shared by replicas and components, kept in state.json so that a
    restarted supervisor carries on with the same backoff."""

    status: str = "running"
    # Restart attempts so far (every spawn after the first).
    restarts: int = 0
    last_exit: str = ""
    # Failures in a row without a stable run (see backoff.Backoff).
    failures: int = 0
    # Wall-clock time of the next restart attempt while `crashed`.
    next_try: float = 0.0
    started_at: float = field(default_factory=time.time)


@dataclass
class Component(Watched):
    name: str
    port: int
    proc: Proc
    # What the supervisor runs again, unchanged, when the component dies.
    command: list[str] = field(default_factory=list)
    # Readiness path answered with 200 once the component serves ("" for the supervisor).
    health: str = ""


@dataclass
class Replica(Watched):
    name: str
    port: int
    cpus: float | None
    memory: int | None
    proc: Proc
    cgroup: dict[str, str] = field(default_factory=dict)
    oom_kills: int = 0
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
            name: _known(Component, {**c, "proc": _known(Proc, c["proc"])})
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

    def present(self) -> list[Replica]:
        """Replicas that count toward the deployment: serving, starting, or waiting for a
        restart; not those leaving or left dead."""
        return [r for r in self.replicas if r.status not in ("leaving", "dead")]

    def all_procs(self) -> list[tuple[str, Proc]]:
        procs = [(c.name, c.proc) for c in self.components.values()]
        procs += [(r.name, r.proc) for r in self.replicas]
        return procs


def _known(kind: type[Any], data: dict[str, Any]) -> Any:
    """Build a dataclass from the keys it knows; the others are ignored."""
    names = {f.name for f in fields(kind)}
    return kind(**{key: value for key, value in data.items() if key in names})


def read_state(run_dir: Path) -> State | None:
    """The run's state; None when there is none; StateError when it cannot be read."""
    path = run_dir / STATE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(path, exc.strerror or str(exc)) from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__} instead of an object")
        return State.from_dict(data)
    except json.JSONDecodeError as exc:
        raise StateError(path, f"not JSON: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise StateError(path, reason) from None


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
