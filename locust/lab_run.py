"""The lab's listener for one Locust process: metrics, pushes, the SLO gate, the summary."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
from lab_arrivals import ArrivalClock
from lab_final_reports import FinalReports
from lab_options import arrival_rate_at, arrival_schedule, default_run_id
from lab_prometheus import ProcessCpu, Pusher, RunMetrics, instance_name, role_of
from lab_tally import LatencyTally
from locust.env import Environment

from lab import slo, trust
from lab.trust import Flag
from monitoring.pushgateway import PushgatewayError, remove_dead_groups

log = logging.getLogger("lab.run")
EXIT_CHECK_FAILED = 3


@dataclass
class Summary:
    run_id: str
    config: str
    shape: str
    duration_s: float
    requests: int
    failures: int
    rps: float
    error_ratio: float
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    p95_all_s: float | None
    users_max: int
    generator_cpu_max: float
    offered_rate: float
    closed_model_ceiling_rps: float | None
    over_top_bucket: int
    checks: dict[str, bool]
    flags: list[Flag]

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


class LabRun:
    def __init__(self, environment: Environment) -> None:
        self.env = environment
        self.role = role_of(environment.runner)
        self.tally = LatencyTally()
        self.metrics: RunMetrics | None = None
        self.pusher: Pusher | None = None
        self.cpu = ProcessCpu()
        self.cpu_max = 0.0
        self.cpu_now = 0.0
        self.users_max = 0
        self.started = 0.0
        self.stopped = 0.0
        self._sampler: gevent.Greenlet | None = None
        self._finishing: gevent.Greenlet | None = None
        self.arrivals: ArrivalClock | None = None
        self.final_reports = FinalReports(environment)
        self._run_id_given = "LOCUST_RUN_ID" in os.environ or any(
            arg.startswith("--run-id") for arg in sys.argv
        )

    # ------------------------------------------------------------ lifecycle

    def remove_dead_runs(self) -> None:
        """Delete the Pushgateway groups of generators that were killed or crashed.

        The master (or the only process) does it once when Locust starts and again when a
        later run starts in the same process; workers leave it to their master.
        """
        options = self.env.parsed_options
        if self.role == "worker" or not options.pushgateway:
            return
        try:
            removed = remove_dead_groups(options.pushgateway)
        except PushgatewayError as exc:
            log.warning("cannot remove dead runs from the Pushgateway: %s", exc)
            return
        for group in removed:
            log.info("removed the Pushgateway group of a dead run: %s", group.describe())

    def test_start(self) -> None:
        options = self.env.parsed_options
        if self.role != "worker" and self.metrics is not None:
            # A later run in the same process (web UI): runs that died meanwhile go first.
            self.remove_dead_runs()
            if not self._run_id_given:
                # A second run in the same process gets an id of its own.
                options.run_id = default_run_id()
        if self.role == "master" and self.env.runner is not None:
            # Workers split the open model's rate by their users' share of the run's users.
            # Locust sends workers the master's custom options, not its user count (a
            # worker on another host reads its own locust.conf): this option carries it.
            # A user count changed later in the web UI keeps the shares of the start.
            options.lab_users_total = self.env.runner.target_user_count
        self.tally = LatencyTally()
        self.cpu.reset()
        self.cpu_max = 0.0
        self.users_max = 0
        self.started = time.time()
        self.metrics = RunMetrics(options.config_label)
        # Open-model users take their arrivals from this clock (lab_users.PenguinUser). A
        # master runs no users, so it draws no arrivals: each worker draws its users' share
        # and pushes it, and the sum over the run's groups is the run's arrivals.
        if self.arrivals is not None:
            self.arrivals.stop()
        self.arrivals = None
        if options.shape == "open" and self.role != "master":
            counter = self.metrics.arrivals.labels(options.config_label)
            self.arrivals = ArrivalClock(self.env, self.started, on_arrival=counter.inc)
        self.env.lab_arrivals = self.arrivals  # type: ignore[attr-defined]
        if self.role != "worker":
            # The run's settings, pushed by one process only (the master or the only one),
            # as locust_users: a sum over the run's groups then counts each once.
            self.metrics.started.labels(options.config_label).set(self.started)
            self.metrics.offered.labels(options.config_label).set(self._offered(0.0))
            self.metrics.think.labels(options.config_label).set(options.think_time)
            self.metrics.info.labels(options.config_label).info(
                {
                    "shape": options.shape,
                    "host": str(self.env.host),
                    "users": str(options.num_users),
                }
            )
        if options.pushgateway:
            self.pusher = Pusher(
                self.metrics,
                options.pushgateway,
                options.run_id,
                instance_name(self.env.runner),
                options.push_interval,
                options.scrape_interval,
                options.push_final_timeout,
            )
            self.pusher.before_push.append(self._update_gauges)
            self.pusher.start()
        self._sampler = gevent.spawn(self._sample_loop)
        log.info("run %s on %s (%s shape)", options.run_id, options.config_label, options.shape)

    def test_stop(self) -> None:
        self.stopped = time.time()
        if self.arrivals is not None:
            self.arrivals.stop()
        # A worker's users have stopped: its last stats go before anything slower.
        self.final_reports.send()
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        if self.pusher is not None:
            pusher, self.pusher = self.pusher, None
            # The final push lingers a scrape interval. Meanwhile a master tells its workers
            # to quit (Locust does so only after its test_stop listeners return), and a
            # worker answers the master: both in their own time. Quitting waits for it.
            self._finishing = gevent.spawn(pusher.finish)
        if self.role == "master":
            # Then the workers' last stats, before Locust stops listening to them.
            self.final_reports.collect()

    def quitting(self) -> None:
        runner = self.env.runner
        if self.role == "master" and runner is not None:
            # Stopped by a signal, Locust quits its listeners before its workers: stop them
            # first, so their last requests are in the summary. A no-op once stopped.
            runner.stop()
        if self.pusher is not None:
            self.test_stop()
        if self._finishing is not None:
            self._finishing.join()
            self._finishing = None
        if self.role != "worker" and self.metrics is not None:
            self.report(self.summarize())

    # ------------------------------------------------------------- events

    def request(self, request_type: str, name: str, response_time: float, exception: Any) -> None:
        seconds = (response_time or 0.0) / 1000.0
        if self.metrics is not None:
            self.metrics.record(request_type, name, seconds, exception)
        self.tally.add(seconds, exception is None)

    def report_to_master(self, data: dict[str, Any]) -> None:
        data["lab_tally"] = self.tally.take()
        data["lab_cpu_max"] = self.cpu_max

    def worker_report(self, data: dict[str, Any]) -> None:
        self.tally.merge(data.get("lab_tally", {}))
        self.cpu_max = max(self.cpu_max, data.get("lab_cpu_max", 0.0))

    # ---------------------------------------------------------- measuring

    def _sample_loop(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.cpu_now = self.cpu.sample()
            self.cpu_max = max(self.cpu_max, self.cpu_now)
            runner = self.env.runner
            if runner is not None:
                self.users_max = max(self.users_max, runner.user_count)

    def _update_gauges(self) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        config = metrics.config
        metrics.cpu.labels(config, self.role).set(self.cpu_now)
        if self.role == "worker":
            return
        if self.env.runner is not None:
            metrics.users.labels(config).set(self.env.runner.user_count)
        metrics.offered.labels(config).set(self._offered(time.time() - self.started))

    def _offered(self, elapsed: float) -> float:
        options = self.env.parsed_options
        return arrival_rate_at(options, elapsed) if options.shape == "open" else 0.0

    # ---------------------------------------------------- summary and gate

    def summarize(self) -> Summary:
        options = self.env.parsed_options
        total = self.env.runner.stats.total
        # Locust's own clock for the run: first to last request, across workers.
        duration = (
            max(total.last_request_timestamp - total.start_time, 1e-9)
            if total.num_requests
            else 0.0
        )
        rps = total.total_rps
        # The closed model's bound, users / think time, as the experiments' judge and the
        # dashboards define it (lab/trust.py): never users / (think time + latency), which
        # by Little's law any steady closed run reaches.
        ceiling = None
        if options.shape != "open":
            ceiling = trust.closed_model_bound(self.users_max, options.think_time)
        # The SLO's P95: all requests, failures included (lab/slo.py).
        p95 = self.tally.quantile(slo.PERCENTILE)
        checks: dict[str, bool] = {}
        if options.check_fail_ratio is not None:
            checks[f"error ratio <= {options.check_fail_ratio:.2%}"] = (
                total.fail_ratio <= options.check_fail_ratio
            )
        if options.check_rps is not None:
            checks[f"RPS >= {options.check_rps:g}"] = rps >= options.check_rps
        if options.check_p95 is not None:
            checks[f"P95 (all requests) <= {options.check_p95:g} s"] = (
                p95 is not None and p95 <= options.check_p95
            )
        schedule = arrival_schedule(options) if options.shape == "open" else []
        # For a stepped schedule the mean offered rate is the comparison point.
        offered = sum(schedule) / len(schedule) if schedule else 0.0
        top = self.tally.over_top_bucket()
        found = [
            trust.generator_saturated(self.cpu_max),
            trust.closed_model_ceiling(rps, ceiling),
            trust.not_sustained(offered, rps),
            trust.over_top_bucket(f"for {top} requests") if top else None,
        ]
        flags = [flag for flag in found if flag is not None]
        return Summary(
            run_id=options.run_id,
            config=options.config_label,
            shape=options.shape,
            duration_s=round(duration, 3),
            requests=total.num_requests,
            failures=total.num_failures,
            rps=round(rps, 2),
            error_ratio=round(total.fail_ratio, 6),
            p50_s=self.tally.quantile(0.50, success_only=True),
            p95_s=self.tally.quantile(0.95, success_only=True),
            p99_s=self.tally.quantile(0.99, success_only=True),
            p95_all_s=p95,
            users_max=self.users_max,
            generator_cpu_max=round(self.cpu_max, 1),
            offered_rate=offered,
            closed_model_ceiling_rps=None if ceiling is None else round(ceiling, 1),
            over_top_bucket=top,
            checks=checks,
            flags=flags,
        )

    def report(self, summary: Summary) -> None:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value * 1000:.0f} ms"

        lines = [
            "",
            f"=== capacity lab summary: run {summary.run_id} on {summary.config} "
            f"({summary.shape}) ===",
            f"requests {summary.requests} in {summary.duration_s:.0f} s: {summary.rps:.1f} RPS, "
            f"errors {summary.error_ratio:.2%} ({summary.failures})",
            f"latency of successful requests: P50 {ms(summary.p50_s)}  P95 {ms(summary.p95_s)}  "
            f"P99 {ms(summary.p99_s)}   (P95 of all requests {ms(summary.p95_all_s)})",
            f"users up to {summary.users_max}, "
            f"generator CPU up to {summary.generator_cpu_max:.0f}%",
        ]
        for name, ok in summary.checks.items():
            lines.append(f"check {name}: {'PASS' if ok else 'FAIL'}")
        for flag in summary.flags:
            lines.append(f"flag: {flag}")
        verdict = "PASS" if summary.passed else "FAIL"
        lines.append(f"verdict: {verdict}" if summary.checks else "verdict: no SLO checks set")
        print("\n".join(lines), file=sys.stderr, flush=True)
        if not summary.passed:
            self.env.process_exit_code = EXIT_CHECK_FAILED
        path = self.env.parsed_options.summary_json
        if path:
            Path(path).write_text(
                json.dumps({**asdict(summary), "passed": summary.passed}, indent=2)
            )
