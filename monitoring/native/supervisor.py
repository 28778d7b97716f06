"""The supervisor: notices replicas that die unexpectedly and restarts them.

It polls every half second. A dead replica leaves Traefik's and Prometheus' lists at once
(Traefik's own health check would take it out within a second too), the event goes to
events.log with the reason (the kernel's OOM killer, or an exit), and with
LAB_RESTART=on-failure it is started again with backoff (1 s, 2 s, 4 s, ... 30 s) under its
name, port and limits. With LAB_RESTART=no it is marked dead; `make status` shows both.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

from rich.console import Console

from monitoring.errors import LabError
from monitoring.native import cgroups
from monitoring.native.settings import NativeSettings
from monitoring.native.stack import NativeStack
from monitoring.native.state import Replica, State, read_state, run_lock, write_state

POLL_SECONDS = 0.5
MAX_BACKOFF = 30.0


class Supervisor:
    def __init__(self, settings: NativeSettings) -> None:
        self.settings = settings
        self.stack = NativeStack(settings, Console(stderr=True, force_terminal=False))
        self.next_try: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.running = True

    def stop(self, _sig: int, _frame: FrameType | None) -> None:
        self.running = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        while self.running:
            time.sleep(POLL_SECONDS)
            with run_lock(self.settings.run_dir, blocking=False) as locked:
                if not locked:
                    continue
                state = read_state(self.settings.run_dir)
                if state is None:
                    return
                if self.check(state):
                    write_state(self.settings.run_dir, state)

    def check(self, state: State) -> bool:
        changed = False
        for replica in state.replicas:
            if replica.status in ("running", "starting") and not replica.proc.alive():
                self._record_death(state, replica)
                changed = True
            if replica.status == "crashed" and time.monotonic() >= self.next_try.get(
                replica.name, 0
            ):
                self._restart(state, replica)
                changed = True
        return changed

    def _record_death(self, state: State, replica: Replica) -> None:
        kills = cgroups.oom_kills(replica.cgroup)
        if kills > replica.oom_kills:
            replica.oom_kills = kills
            reason = "killed by the kernel for exceeding its memory limit (OOM)"
        else:
            reason = "exited unexpectedly"
        replica.last_exit = f"{time.strftime('%H:%M:%S')} {reason}"
        replica.status = "crashed" if self.settings.restart == "on-failure" else "dead"
        self.stack.files.publish(state.serving(), state.label)
        action = "restarting it" if replica.status == "crashed" else "marked dead (LAB_RESTART=no)"
        self.stack.event(f"{replica.name} pid {replica.proc.pid} {reason}; {action}")

    def _restart(self, state: State, replica: Replica) -> None:
        try:
            self.stack.spawn_replica(state, replica)
            self.stack.wait_ready(replica)
        except LabError as exc:
            replica.status = "crashed"
            delay = min(self.backoff.get(replica.name, 0.5) * 2, MAX_BACKOFF)
            self.backoff[replica.name] = delay
            self.next_try[replica.name] = time.monotonic() + delay
            self.stack.event(f"{replica.name} restart failed, next try in {delay:.0f} s: {exc}")
            return
        replica.restarts += 1
        self.backoff.pop(replica.name, None)
        self.stack.files.publish(state.serving(), state.label)
        self.stack.event(
            f"{replica.name} restarted as pid {replica.proc.pid} (restart {replica.restarts})"
        )


def supervise(settings: NativeSettings) -> None:
    Supervisor(settings).run()
