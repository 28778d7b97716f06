"""`make experiment`: every deployment of the plan, measured and judged, one after another.

For each deployment: scale the running stack (every replica ready and scraped), show the
workshop's closed-model view (users with think time; shown, never deciding), kill one
replica in a short run (failover), and step an open-model arrival rate up, the target's
rate among the steps, each step measured in repeated windows after a warm-up (capacity
and verdict). A step whose repeats disagree is measured once more. The results are read
back from Prometheus with the recording rules' expressions, every answer kept in raw/,
and written after each deployment, with the report, so an interrupted run keeps what it
measured. Ctrl-C stops the load, never a scaling step half done, and leaves the stack
running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lab import trust
from lab.core import Deployment
from lab.errors import LabError
from lab.experiments import judge
from lab.experiments.loadrun import LocustLauncher, LocustRun
from lab.experiments.measure import ARRIVALS_SUMMED, Measurement, WindowReader
from lab.experiments.plan import Experiment, Service, window_problem
from lab.experiments.raw import HostCpu, RecordingPrometheus
from lab.experiments.report import write_report
from lab.experiments.results import ConfigResult, ExperimentResults, Step, save
from lab.runtimes.contract import Runtime, UnsupportedError
from monitoring.prom import Prometheus


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, so the stack is never left half changed."""
    caught: list[int] = []
    previous = signal.getsignal(signal.SIGINT)

    def hold(sig: int, _frame: FrameType | None) -> None:
        caught.append(sig)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class Ticker:
    """A progress bar whose total is the plan's estimated seconds, advanced by the clock."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            elapsed = time.monotonic() - self.started
            total = self.progress.tasks[0].total or elapsed
            # The estimate was short: keep a little room so the bar never sits at 100 %.
            self.progress.update(self.task, completed=elapsed, total=max(total, elapsed + 5))

    def phase(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class ExperimentRunner:
    def __init__(
        self,
        experiment: Experiment,
        runtime: Runtime,
        out_dir: Path,
        machine: dict[str, Any],
        console: Console | None = None,
        push_interval_s: float = 1.0,
    ) -> None:
        self.experiment = experiment
        self.push_interval_s = push_interval_s
        self.runtime = runtime
        self.out_dir = out_dir
        self.console = console or Console()
        endpoints = runtime.endpoints()
        self.endpoints = endpoints
        self.prometheus = Prometheus(endpoints.prometheus)
        # Every answer the judge reads is kept (raw/), so each number can be rebuilt.
        self.recorder = RecordingPrometheus(self.prometheus)
        self.reader = WindowReader(
            self.recorder, endpoints.scrape_interval_seconds, push_interval_s
        )
        self.host = HostCpu()
        budget = experiment.load_generator.cpus
        self.placement = None if budget is None else runtime.place_load_generator(budget)
        self.launcher = LocustLauncher(
            endpoints,
            out_dir / "logs",
            self.placement,
            experiment.load_generator.workers,
            push_interval_s,
        )
        self.results = ExperimentResults(
            name=experiment.name,
            plan=experiment.model_dump(mode="json"),
            runtime=runtime.name,
            # The scrape and push intervals too: replaying the raw series needs them (raw.py).
            machine={
                **machine,
                "scrape_interval_s": endpoints.scrape_interval_seconds,
                "push_interval_s": push_interval_s,
                "arrivals": ARRIVALS_SUMMED,
            },
            started=time.time(),
        )
        self.current: LocustRun | None = None
        self.ticker: Ticker | None = None

    # ------------------------------------------------------------------ driver

    def run(
        self, only: list[Deployment] | None = None, capacity_only: bool = False
    ) -> ExperimentResults:
        deployments = only or self.experiment.deployments()
        self._check_windows()
        self._use_service_settings()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        estimate = (
            self.experiment.estimated_seconds() * len(deployments) / len(self.experiment.configs)
        )
        self.host.start()
        try:
            with Progress(*columns, console=self.console) as progress:
                task = progress.add_task("preparing", total=estimate)
                with Ticker(progress, task) as self.ticker:
                    for index, deployment in enumerate(deployments, start=1):
                        prefix = f"config {index}/{len(deployments)} {deployment.label}"
                        result = self._run_config(deployment, prefix, capacity_only)
                        self.results.configs.append(result)
                        self._save()
                    if self.experiment.engine_lever is not None and only is None:
                        self.results.engine_lever = self._engine_lever()
                        self._save()
            self.results.status = "complete"
        except KeyboardInterrupt:
            if self.current is not None:
                self.launcher.stop(self.current)
            self.results.status = "interrupted"
            self.console.print(
                "[yellow]interrupted: the load is stopped, the stack keeps running; "
                f"what was measured is in {self.out_dir}[/yellow]"
            )
            raise
        finally:
            self.host.stop()
            self.results.finished = time.time()
            self._save()
            if self.placement is not None:
                self.runtime.release_load_generator(self.placement)
        return self.results

    def _save(self) -> None:
        save(self.results, self.out_dir)
        self.recorder.save(self.out_dir)
        self.host.save(self.out_dir)
        write_report(self.results, self.out_dir)

    def _phase(self, text: str) -> None:
        if self.ticker is not None:
            self.ticker.phase(text)

    def _check_windows(self) -> None:
        scrape = self.endpoints.scrape_interval_seconds
        problem = window_problem(self.experiment, scrape, self.push_interval_s)
        if problem is not None:
            raise LabError(problem)

    def _use_service_settings(self, service: Service | None = None) -> None:
        """Replicas read API_ENGINE and API_BATCHING from the environment they start in."""
        service = service or self.experiment.service
        os.environ["API_ENGINE"] = service.engine
        os.environ["API_BATCHING"] = service.batching

    def _serving_as_planned(self, service: Service | None = None) -> bool:
        want = service or self.experiment.service
        batching = want.batching == "on"
        try:
            for url in self.runtime.replica_urls():
                serving = httpx.get(f"{url}/metadata", timeout=5).json()["serving"]
                if serving["engine"] != want.engine or serving["batching"] != batching:
                    return False
        except (httpx.HTTPError, KeyError, ValueError):
            return False
        return True

    # -------------------------------------------------------------- one config

    def _run_config(self, deployment: Deployment, prefix: str, capacity_only: bool) -> ConfigResult:
        result = ConfigResult(
            deployment.label, deployment.replicas, deployment.cpus, deployment.memory
        )
        self._phase(f"{prefix}: scaling")
        with deferred_interrupt():
            if self.runtime.current() is None:
                self.runtime.up(deployment)
            else:
                self.runtime.scale(deployment, replace=not self._serving_as_planned())
        self._wait_quiet(prefix)
        if not capacity_only:
            if self.experiment.workshop_view is not None:
                self._workshop_view(deployment, result, prefix)
            if self.experiment.failover.enabled:
                self._failover(deployment, result, prefix)
        self._capacity(deployment, result, prefix)
        windows = [m for step in result.steps for m in step.windows] + result.workshop
        limits = None if deployment.cpus is None else deployment.replicas * deployment.cpus
        host = judge.host_flag(windows, limits, self.host.cores)
        result.flags = [host] if host else []
        return result

    def _engine_lever(self) -> ConfigResult:
        """The lever's deployment again, serving with the lever's engine: the capacity
        steps only (the target's rate among them), same settle, windows and repeats."""
        lever = self.experiment.engine_lever
        deployment = self.experiment.lever_deployment()
        assert lever is not None and deployment is not None
        prefix = f"engine lever {deployment.label} ({lever.service.engine})"
        result = ConfigResult(
            deployment.label, deployment.replicas, deployment.cpus, deployment.memory
        )
        self._phase(f"{prefix}: restarting the replicas with the lever's engine")
        self._use_service_settings(lever.service)
        try:
            with deferred_interrupt():
                self.runtime.scale(deployment, replace=not self._serving_as_planned(lever.service))
            if not self._serving_as_planned(lever.service):
                raise LabError(
                    f"the replicas do not serve with engine {lever.service.engine}, batching "
                    f"{lever.service.batching} after a restart: check `make logs`"
                )
            self._wait_quiet(prefix)
            self._capacity(deployment, result, prefix, self.experiment.lever_rates(), lever.refine)
        finally:
            # The stack goes back to the plan's service for whatever runs next.
            self._use_service_settings()
        windows = [m for step in result.steps for m in step.windows]
        limits = None if deployment.cpus is None else deployment.replicas * deployment.cpus
        host = judge.host_flag(windows, limits, self.host.cores)
        result.flags = [host] if host else []
        return result

    def _measure(
        self, deployment: Deployment, run_id: str, start: float, end: float
    ) -> Measurement:
        measurement = self.reader.measure(deployment.label, run_id, start, end)
        measurement.host_busy = self.host.busy_share(start, end)
        return measurement

    def _workshop_view(self, deployment: Deployment, result: ConfigResult, prefix: str) -> None:
        """The workshop's closed model: users with think time, one window after a warm-up."""
        view = self.experiment.workshop_view
        assert view is not None
        run_id = f"{self.experiment.name}-{deployment.label}-closed-{int(time.time())}"
        args = ["-u", str(view.users), "-r", str(view.spawn_rate)]
        args += ["--think-time", str(view.think_time)]
        self._phase(f"{prefix}: workshop view (closed model), warm-up")
        before = time.time()
        run = self._start(run_id, deployment.label, args, view.warmup + view.window)
        start = run.started + view.warmup
        end = start + view.window
        self._sleep_until(start)
        self._phase(f"{prefix}: workshop view (closed model), measuring")
        self._sleep_until(end + 1.5 * self.endpoints.scrape_interval_seconds)
        measurement = self._measure(deployment, run_id, start, end)
        self.launcher.finish(run, timeout=90)
        self.current = None
        self._wait_quiet(prefix)
        measurement.client_successes, measurement.server_successes = self.reader.count_run(
            deployment.label, run_id, before, time.time()
        )
        result.workshop.append(measurement)
        result.workshop_flags = judge.closed_view_flags(
            measurement, view.users, view.think_time, deployment.replicas, self.host.cores
        )

    def _failover(self, deployment: Deployment, result: ConfigResult, prefix: str) -> None:
        plan = self.experiment.failover
        run_id = f"{self.experiment.name}-{deployment.label}-failover-{int(time.time())}"
        self._phase(f"{prefix}: failover, killing one replica")
        args = ["-u", str(plan.users), "-r", str(plan.users), "--think-time", str(plan.think_time)]
        run = self._start(run_id, deployment.label, args, plan.duration)
        self._sleep_until(run.started + plan.kill_after)
        killed_at = time.time()
        try:
            victim, restarts = self.runtime.kill_replica()
        except UnsupportedError as exc:
            # This runtime cannot break a replica: the run ends, the report says why.
            self.launcher.stop(run)
            self.current = None
            result.failover = {"skipped": str(exc)}
            self._wait_quiet(prefix)
            return
        recovered_after = None
        while time.time() < run.started + plan.duration:
            if recovered_after is None and self.runtime.recovered(victim, restarts):
                recovered_after = time.time() - killed_at
            time.sleep(0.1)
        end = run.started + plan.duration
        self._sleep_until(end + 1.5 * self.endpoints.scrape_interval_seconds)
        measurement = self.reader.measure(deployment.label, run_id, run.started, end)
        self.launcher.finish(run, timeout=60)
        self.current = None
        summary = run.summary()
        result.failover = {
            "killed": victim,
            "killed_after_s": plan.kill_after,
            "recovered_after_s": recovered_after,
            "requests": summary.get("requests"),
            "failures": summary.get("failures"),
            "error_ratio": summary.get("error_ratio"),
            "p99_s": summary.get("p99_s"),
            "measurement": measurement.to_dict(),
        }
        self._wait_quiet(prefix)

    def _capacity(
        self,
        deployment: Deployment,
        result: ConfigResult,
        prefix: str,
        rates: list[float] | None = None,
        refine: int | None = None,
    ) -> None:
        """Step the open-model rate up in one run (the target's rate among the steps)
        until a step fails, measure once more each step whose repeats disagreed, then
        bisect between the last sustained rate and the first failing one. `rates` and
        `refine` default to the plan's capacity search (the engine lever has its own)."""
        plan = self.experiment.capacity
        rates = rates or plan.with_target(self.experiment.target.arrival_rate)
        refine = plan.refine if refine is None else refine
        remaining = list(rates)
        while remaining:
            self._search(deployment, result, prefix, remaining)
            measured = {step.rate for step in result.steps}
            remaining = [rate for rate in remaining if rate not in measured]
            # The search stopped at a failing step that its re-measurement found sustained
            # within the SLO after all: the steps above it are still to be measured.
            if not all(step.ok for step in result.steps):
                break
        low, high = judge.knee(result.steps)
        for number in range(1, refine + 1 if high is not None else 1):
            assert high is not None
            rate = round(((low or 0.0) + high) / 2, 1)
            self._phase(f"{prefix}: refining the knee {number}/{refine}, {rate:g}/s")
            step = self._separate_run(deployment, rate, prefix, refined=True)
            result.steps.append(step)
            self._remeasure_if_unsure(deployment, step, prefix)
            low, high = judge.knee(result.steps)
        result.knee_rps, result.knee_upper_rps = judge.knee(result.steps)
        result.meets_target = judge.meets_target(result.steps, self.experiment.target.arrival_rate)

    def _search(
        self, deployment: Deployment, result: ConfigResult, prefix: str, rates: list[float]
    ) -> None:
        """One stepped open-model run over `rates`, stopping at the first failing step
        (stop_after_breach), then each step whose repeats disagreed measured once more."""
        plan = self.experiment.capacity
        run_id = f"{self.experiment.name}-{deployment.label}-capacity-{int(time.time())}"
        users = plan.users(max(rates))
        args = [
            "-u", str(users), "-r", str(users), "--shape", "open",
            "--arrival-rates", ",".join(f"{rate:g}" for rate in rates),
            "--step-seconds", str(plan.step),
        ]  # fmt: skip
        self._phase(f"{prefix}: capacity search, starting")
        run = self._start(run_id, deployment.label, args, plan.step * len(rates))
        searched = []
        for index, rate in enumerate(rates):
            label = f"{prefix}: step {index + 1}/{len(rates)}, {rate:g}/s"
            start = run.started + index * plan.step
            windows = self._windows(deployment, run_id, start, label)
            step = self._step(deployment, rate, windows)
            result.steps.append(step)
            searched.append(step)
            if plan.stop_after_breach and not step.ok:
                break
        self.launcher.stop(run)
        self.current = None
        self._wait_quiet(prefix)
        for step in searched:
            self._remeasure_if_unsure(deployment, step, prefix)

    def _windows(
        self, deployment: Deployment, run_id: str, start: float, label: str
    ) -> list[Measurement]:
        """The repeated windows of a step that began at `start`, after its warm-up."""
        plan = self.experiment.capacity
        windows = []
        for repeat in range(plan.repeats):
            begin = start + plan.settle + repeat * plan.window
            end = begin + plan.window
            self._phase(f"{label}, window {repeat + 1}/{plan.repeats}")
            self._sleep_until(end + 1.5 * self.endpoints.scrape_interval_seconds)
            windows.append(self._measure(deployment, run_id, begin, end))
        return windows

    def _step(
        self, deployment: Deployment, rate: float, windows: list[Measurement], refined: bool = False
    ) -> Step:
        return Step(
            rate=rate,
            windows=windows,
            passed=judge.step_within_slo(windows),
            sustained=judge.step_sustained(windows),
            flags=judge.step_flags(windows, deployment.replicas, self.host.cores),
            refined=refined,
        )

    def _remeasure_if_unsure(self, deployment: Deployment, step: Step, prefix: str) -> None:
        """Repeats that disagree: the step once more in its own run; every window then
        decides, and a second disagreement is flagged."""
        plan = self.experiment.capacity
        if judge.disagreement(step.windows, plan.tolerance) is None:
            return
        self._phase(f"{prefix}: {step.rate:g}/s again, its repeats disagreed")
        again = self._separate_run(deployment, step.rate, prefix, refined=step.refined)
        windows = step.windows + again.windows
        still = judge.disagreement(again.windows, plan.tolerance)
        step.windows = windows
        step.passed = judge.step_within_slo(windows)
        step.sustained = judge.step_sustained(windows)
        step.flags = judge.step_flags(windows, deployment.replicas, self.host.cores)
        if still is not None:
            step.flags = judge.unique([*step.flags, trust.repeats_disagree(still)])
        step.remeasured = True

    def _separate_run(
        self, deployment: Deployment, rate: float, prefix: str, refined: bool
    ) -> Step:
        """One rate in its own open-model run: warm-up and repeated windows."""
        plan = self.experiment.capacity
        run_id = f"{self.experiment.name}-{deployment.label}-{int(time.time())}-at-{rate:g}"
        users = plan.users(rate)
        args = ["-u", str(users), "-r", str(users), "--shape", "open"]
        args += ["--arrival-rate", f"{rate:g}"]
        run = self._start(run_id, deployment.label, args, plan.step)
        windows = self._windows(deployment, run_id, run.started, f"{prefix}: {rate:g}/s")
        self.launcher.finish(run, timeout=90)
        self.current = None
        self._wait_quiet(prefix)
        return self._step(deployment, rate, windows, refined=refined)

    # ----------------------------------------------------------------- helpers

    def _start(self, run_id: str, config: str, args: list[str], seconds: float) -> LocustRun:
        run = self.launcher.start(run_id, config, args, seconds)
        self.current = run
        self.launcher.wait_started(run)
        return run

    def _sleep_until(self, moment: float) -> None:
        while True:
            remaining = moment - time.time()
            if remaining <= 0:
                return
            if (
                self.current is not None
                and self.current.process.poll() is not None
                and remaining > 5
            ):
                raise LabError(f"Locust stopped before the window ended; log: {self.current.log}")
            time.sleep(min(remaining, 0.25))

    def _wait_quiet(self, prefix: str, timeout: float = 90) -> None:
        """Let queued requests drain, so one phase's backlog is not the next one's load."""
        self._phase(f"{prefix}: waiting for in-flight requests to drain")
        query = 'sum(http_requests_inprogress{job="api", handler=~"/predict.*"})'
        deadline = time.monotonic() + timeout
        time.sleep(self.endpoints.scrape_interval_seconds)
        while time.monotonic() < deadline:
            if (self.prometheus.value(query, default=0.0) or 0.0) < 1:
                return
            time.sleep(self.endpoints.scrape_interval_seconds)
