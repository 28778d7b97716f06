"""The supervisor: restarts whatever the native stack runs when it dies, and reports it.

It watches every replica and every component (Traefik, Prometheus, the Pushgateway),
polling twice a second under the run folder's lock, and never blocks on one of them: a
restart is a state that later passes advance.

- A process that exits unexpectedly: the event goes to events.log with the reason (the
  kernel's OOM killer, an exit code, a signal). A replica leaves Traefik's and
  Prometheus' lists at once. With LAB_RESTART=on-failure it is started again under the
  same name, port, limits and command line after the delay that `backoff.POLICY` gives:
  at once after a stable run, then 1, 2, 4 ... 30 s while it keeps failing. With
  LAB_RESTART=no it is marked dead.
- A restart is `starting` until it answers its readiness check (/ready for a replica),
  and only then does a replica rejoin Traefik and Prometheus. One that is not ready
  within LAB_READY_TIMEOUT_SECONDS is stopped (SIGTERM, then SIGKILL) and counts as a
  failure, so no abandoned process keeps a port.
- Replicas a launcher left half-way (killed during `scale`) are finished: a new one
  joins once ready, a leaving one is stopped.
- Any exception is caught, logged (events.log and its own log) and counted in
  lab_supervisor_errors_total; the loop goes on.
- Every few seconds it removes the Pushgateway groups of load-generator runs that died
  (monitoring/pushgateway.py), so a Locust killed while the stack stays up is not
  scraped as current until the next run starts.

Its own metrics (lab_component_up, lab_component_restarts_total,
lab_component_crash_looping) are served on the port recorded in state.json.
"""

from __future__ import annotations

import contextlib
import signal
import time
import traceback
from collections.abc import Iterable
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rich.console import Console

from lab.errors import LabError
from lab.runtimes.native import cgroups
from lab.runtimes.native.backoff import POLICY, Backoff
from lab.runtimes.native.processes import exit_description, stop
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.stack import NativeStack
from lab.runtimes.native.state import (
    Component,
    Replica,
    State,
    StateError,
    read_state,
    run_lock,
    write_state,
)
from monitoring.pushgateway import PushgatewayError, remove_dead_groups

POLL_SECONDS = 0.5
# The same error is written to events.log at most this often (the loop runs twice a second).
ERROR_REPEAT_SECONDS = 60.0
# How often dead load-generator groups are looked for: one cheap GET to the Pushgateway.
SWEEP_SECONDS = 5.0

Supervised = Component | Replica


class Supervisor:
    def __init__(self, settings: NativeSettings, policy: Backoff = POLICY) -> None:
        self.settings = settings
        self.policy = policy
        self.stack = NativeStack(settings, Console(stderr=True, force_terminal=False))
        self.running = True
        self.errors = 0
        # The state as last checked, for the metrics endpoint. Never mutated once stored
        # (each pass reads a fresh copy), so the HTTP thread may read it as it is.
        self.snapshot: State | None = None
        self._last_logged: dict[str, float] = {}
        self._next_sweep = 0.0

    def stop(self, _sig: int, _frame: FrameType | None) -> None:
        self.running = False

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.serve_metrics()
        self.stack.event("supervisor started")
        while self.running:
            time.sleep(POLL_SECONDS)
            if not self.tick():
                return
            self.sweep_dead_runs()

    def sweep_dead_runs(self) -> None:
        """Delete the Pushgateway groups of dead Locust runs, every SWEEP_SECONDS."""
        now = time.monotonic()
        if now < self._next_sweep or self.snapshot is None:
            return
        self._next_sweep = now + SWEEP_SECONDS
        port = self.snapshot.ports.get("pushgateway")
        if not port:
            return
        try:
            removed = remove_dead_groups(self.settings.url(port))
        except PushgatewayError:
            # Down or restarting: the Pushgateway is supervised like the rest; try later.
            return
        # The supervisor must outlive its own bugs.
        except Exception as exc:
            self._error(f"sweeping dead runs failed: {exc!r}", detail=traceback.format_exc())
            return
        for group in removed:
            self.stack.event(f"removed the Pushgateway group of a dead run: {group.describe()}")

    def serve_metrics(self) -> None:
        """Serve /metrics on the port `up` recorded; without one (or if it is taken) the
        supervisor still supervises, and says why it serves no metrics."""
        try:
            state = read_state(self.settings.run_dir)
        except StateError as exc:
            self._error(f"cannot read the metrics port: {exc}")
            return
        port = state.ports.get("supervisor", 0) if state else 0
        if not port:
            return
        registry = CollectorRegistry()
        registry.register(SupervisionCollector(self))
        try:
            start_http_server(port, addr=self.settings.host, registry=registry)
        except OSError as exc:
            self._error(f"cannot serve metrics on port {port}: {exc}")

    def tick(self) -> bool:
        """One pass over everything watched; False once the stack is gone (`down`)."""
        try:
            with run_lock(self.settings.run_dir, blocking=False) as locked:
                if not locked:
                    # A launcher command is changing the stack; look again next time.
                    return True
                state = read_state(self.settings.run_dir)
                if state is None:
                    return False
                if self.check(state):
                    write_state(self.settings.run_dir, state)
                self.snapshot = state
        except StateError as exc:
            # Nothing can be supervised without the record; `down` still finds everything.
            self._error(str(exc))
        # The supervisor must outlive its own bugs.
        except Exception as exc:
            self._error(f"unexpected error, carrying on: {exc!r}", detail=traceback.format_exc())
        return True

    def check(self, state: State) -> bool:
        """Advance every watched process by one step; True when the state changed. An
        error with one process is logged and leaves the others checked."""
        changed = False
        watched: list[Supervised] = [c for c in state.components.values() if c.name != "supervisor"]
        watched += list(state.replicas)
        for item in watched:
            try:
                changed |= self._step(state, item)
            # One broken check must not stop the others.
            except Exception as exc:
                self._error(
                    f"checking {item.name} failed, carrying on: {exc!r}",
                    detail=traceback.format_exc(),
                )
                # It may have spawned something before failing: keep the record of it.
                changed = True
        return changed

    # ------------------------------------------------------------------ steps

    def _step(self, state: State, item: Supervised) -> bool:
        now = time.time()
        if item.status == "leaving" and isinstance(item, Replica):
            self._finish_leaving(state, item)
            return True
        if item.status in ("running", "starting") and not item.proc.alive():
            self._record_exit(state, item, now)
            return True
        if item.status == "starting":
            if self.stack.is_ready(item):
                self._became_ready(state, item)
                return True
            if now - item.started_at > self.settings.ready_timeout_seconds:
                self._timed_out(state, item, now)
                return True
            return False
        if (
            item.status == "running"
            and item.failures
            and self.policy.is_stable(now - item.started_at)
        ):
            item.failures = 0
            self.stack.event(
                f"{item.name} stayed up {self.policy.stable_seconds:.0f} s: healthy again, "
                "its backoff starts over"
            )
            return True
        if item.status == "crashed" and now >= item.next_try:
            self._restart(state, item)
            return True
        return False

    def _record_exit(self, state: State, item: Supervised, now: float) -> None:
        reason = exit_description(item.proc)
        if isinstance(item, Replica):
            kills = cgroups.oom_kills(item.cgroup)
            if kills > item.oom_kills:
                item.oom_kills = kills
                reason = "was killed by the kernel for exceeding its memory limit (OOM)"
            elif reason == "exited":
                reason = "exited unexpectedly"
        elif reason == "exited":
            reason = "exited unexpectedly"
        was_ready = item.status == "running"
        stage = "" if was_ready else " before it was ready"
        self._failed(state, item, now, f"pid {item.proc.pid} {reason}{stage}")

    def _timed_out(self, state: State, item: Supervised, now: float) -> None:
        # Kill what this restart started, or it would keep the port while the next
        # attempt starts another copy.
        stop(item.proc, timeout=5, signals=2 if isinstance(item, Replica) else 1)
        timeout = self.settings.ready_timeout_seconds
        self._failed(
            state, item, now, f"pid {item.proc.pid} was not ready after {timeout:.0f} s; stopped it"
        )

    def _failed(self, state: State, item: Supervised, now: float, what: str) -> None:
        item.last_exit = f"{time.strftime('%H:%M:%S')} {what}"
        up_seconds = now - item.started_at
        if self.settings.restart == "no":
            item.status = "dead"
            self._publish(state, item)
            self.stack.event(f"{item.name} {what}; marked dead (LAB_RESTART=no)")
            return
        item.failures = self.policy.failures_after_exit(item.failures, up_seconds)
        delay = self.policy.delay(item.failures)
        item.next_try = now + delay
        item.status = "crashed"
        self._publish(state, item)
        when = "now" if delay == 0 else f"in {delay:.0f} s"
        loop = ", crash loop" if self.policy.crash_looping(item.failures) else ""
        self.stack.event(
            f"{item.name} {what}; restarting it {when} (up {up_seconds:.1f} s, "
            f"failure {item.failures} in a row{loop})"
        )

    def _restart(self, state: State, item: Supervised) -> None:
        item.restarts += 1
        try:
            if isinstance(item, Replica):
                self.stack.spawn_replica(state, item)
            else:
                if not item.command:
                    raise LabError("its command line was not recorded (started by an older lab)")
                self.stack.spawn_component(item)
        except (LabError, OSError) as exc:
            # The attempt failed before a process existed: a failure like any other.
            item.started_at = time.time()
            self._failed(state, item, time.time(), f"could not be started: {exc}")
            return
        self.stack.event(
            f"{item.name} restart {item.restarts}: pid {item.proc.pid} started, "
            "waiting until it is ready"
        )

    def _became_ready(self, state: State, item: Supervised) -> None:
        item.status = "running"
        self._publish(state, item)
        if item.restarts:
            self.stack.event(
                f"{item.name} restarted as pid {item.proc.pid} (restart {item.restarts}); ready"
            )
        else:
            # Started by a launcher that stopped before it could add it.
            self.stack.event(f"{item.name} pid {item.proc.pid} ready; joined for its launcher")

    def _finish_leaving(self, state: State, replica: Replica) -> None:
        """A replica a launcher was retiring when it died: already out of Traefik, so it
        only has to stop."""
        stop(replica.proc, timeout=20, signals=2)
        cgroups.remove(replica.cgroup)
        state.replicas.remove(replica)
        self.stack.event(f"{replica.name} pid {replica.proc.pid} left (its launcher stopped)")

    def _publish(self, state: State, item: Supervised) -> None:
        """A replica joins or leaves Traefik's and Prometheus' lists with its state."""
        if isinstance(item, Replica):
            self.stack.files.publish(state.serving(), state.label)

    # ----------------------------------------------------------------- errors

    def _error(self, message: str, detail: str = "") -> None:
        self.errors += 1
        now = time.monotonic()
        # Its own log gets everything, with the traceback; events.log each error once a minute.
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}\n{detail}", flush=True)
        if now - self._last_logged.get(message, -ERROR_REPEAT_SECONDS) >= ERROR_REPEAT_SECONDS:
            self._last_logged[message] = now
            with contextlib.suppress(OSError):
                self.stack.event(f"supervisor error: {message}")


class SupervisionCollector(Collector):
    """lab_component_* from the supervisor's last look at the state."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "lab_component_up",
            "1 while the component runs and passed its readiness check, per the supervisor.",
            labels=["component"],
        )
        restarts = CounterMetricFamily(
            "lab_component_restarts",
            "Restarts the supervisor attempted, per component.",
            labels=["component"],
        )
        looping = GaugeMetricFamily(
            "lab_component_crash_looping",
            "1 while the component keeps failing without a stable run (see backoff.py).",
            labels=["component"],
        )
        failures = GaugeMetricFamily(
            "lab_component_failures_in_a_row",
            "Failures since the component last stayed up long enough to count as stable.",
            labels=["component"],
        )
        state = self.supervisor.snapshot
        watched: list[Supervised] = []
        if state is not None:
            watched = [c for c in state.components.values() if c.name != "supervisor"]
            watched += state.replicas
        for item in watched:
            healthy = item.status == "running" and item.proc.alive()
            up.add_metric([item.name], 1.0 if healthy else 0.0)
            restarts.add_metric([item.name], float(item.restarts))
            crash_looping = self.supervisor.policy.crash_looping(item.failures)
            looping.add_metric([item.name], 1.0 if crash_looping else 0.0)
            failures.add_metric([item.name], float(item.failures))
        errors = CounterMetricFamily(
            "lab_supervisor_errors",
            "Exceptions the supervisor caught and carried on after (details in its log).",
        )
        errors.add_metric([], float(self.supervisor.errors))
        return [up, restarts, looping, failures, errors]


def supervise(settings: NativeSettings) -> None:
    Supervisor(settings).run()
