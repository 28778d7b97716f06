"""Locust's statistics as Prometheus metrics, pushed to the Pushgateway.

Every request lands in prometheus_client metrics with the project's latency buckets,
success and failure apart. Each Locust process pushes its own registry every
--push-interval seconds as one group (monitoring.pushgateway names it: job=locust, run_id,
instance), and every series carries the run's `config`. Each push holds the cumulative
totals, so after a Pushgateway restart the next push restores the full counts. The group
also carries a time to live and the process's identity, so the next run (or the stack's
`up`) can delete the group of a generator that was killed or crashed.

A Pushgateway that stops answering never stops the test: the failure is counted
(`locust_push_failures_total`, pushed once pushes work again), logged once when pushes
start failing and once when they resume, and retried with a delay that doubles from one
push interval up to four. When the test stops (or Locust quits) the process pushes a
final state (retried every push interval for up to --push-final-timeout seconds if the
Pushgateway answered earlier in the run), waits one Prometheus scrape interval so the
final values are scraped, then deletes its group: the Pushgateway keeps nothing stale,
Prometheus keeps the history.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent
import psutil
from locust.exception import CatchResponseError
from locust.runners import MasterRunner, WorkerRunner
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.exposition import delete_from_gateway, push_to_gateway

from api.buckets import LATENCY_BUCKETS
from api.cgroup_stats import CgroupPaths, read_snapshot
from monitoring.pushgateway import JOB, add_liveness_metrics, grouping_key, ttl_seconds

log = logging.getLogger("lab.prometheus")
# `_created` series double what is pushed and nothing reads them.
disable_created_metrics()
WARN_EVERY_SECONDS = 60
PUSH_TIMEOUT_SECONDS = 3.0
# After failed pushes the retry delay doubles from one push interval up to this many.
BACKOFF_MAX_INTERVALS = 4


def role_of(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "standalone"


def exception_label(exception: BaseException) -> str:
    """Failures by exception class; our own checks' messages are the class's detail."""
    if isinstance(exception, CatchResponseError):
        return str(exception)[:60] or "CatchResponseError"
    return type(exception).__name__


class RunMetrics:
    """One run's metrics in a registry of its own, all labelled with the run's config."""

    def __init__(self, config: str) -> None:
        self.config = config
        self.registry = CollectorRegistry()
        labels = ["config", "method", "name", "result"]
        self.requests = Counter(
            "locust_requests_total", "Requests sent, by result", labels, registry=self.registry
        )
        self.latency = Histogram(
            "locust_request_duration_seconds",
            "Response time seen by the load generator, success and failure apart",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.failures = Counter(
            "locust_request_failures_total",
            "Failed requests by exception class (or by the check that failed them)",
            ["config", "method", "name", "exception"],
            registry=self.registry,
        )
        self.users = Gauge("locust_users", "Users running now", ["config"], registry=self.registry)
        self.cpu = Gauge(
            "locust_cpu_percent",
            "CPU of this Locust process, % of what it may use: one core or its cgroup quota "
            "(above ~90 % its latencies inflate)",
            ["config", "role"],
            registry=self.registry,
        )
        self.offered = Gauge(
            "locust_offered_rate",
            "Open model: task runs per second the generator tries to start (0: closed model)",
            ["config"],
            registry=self.registry,
        )
        self.arrivals = Counter(
            "locust_arrivals_total",
            "Open model: task starts the arrival clock offered (started or still waiting)",
            ["config"],
            registry=self.registry,
        )
        self.think = Gauge(
            "locust_think_time_seconds",
            "Closed model: mean wait between a user's tasks",
            ["config"],
            registry=self.registry,
        )
        self.started = Gauge(
            "locust_run_start_time_seconds",
            "Unix time the run started",
            ["config"],
            registry=self.registry,
        )
        self.info = Info("locust_run", "The run's settings", ["config"], registry=self.registry)
        self.push_failures = Counter(
            "locust_push_failures",
            "Pushes of this process's metrics to the Pushgateway that failed",
            ["config"],
            registry=self.registry,
        )
        # Present from the first push, so "no failure" reads 0 rather than nothing.
        self.push_failures.labels(config)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def record(
        self, method: str, name: str, seconds: float, exception: BaseException | None
    ) -> None:
        result = "success" if exception is None else "failure"
        key = (method, name, result)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self.requests.labels(self.config, *key),
                self.latency.labels(self.config, *key),
            )
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)
        if exception is not None:
            self.failures.labels(self.config, method, name, exception_label(exception)).inc()


class Pusher:
    """Pushes one process's registry on a schedule and removes its group at the end."""

    def __init__(
        self,
        metrics: RunMetrics,
        gateway: str,
        run_id: str,
        instance: str,
        interval: float,
        linger: float,
        final_timeout: float,
    ) -> None:
        self.metrics = metrics
        self.gateway = gateway
        self.run_id = run_id
        self.grouping = grouping_key(run_id, instance)
        self.interval = interval
        self.linger = linger
        self.final_timeout = final_timeout
        self.before_push: list[Any] = []
        self.failed_in_row = 0
        self._ever_pushed = False
        self._last_success = time.monotonic()
        self._last_said: dict[int, float] = {}
        self._greenlet: gevent.Greenlet | None = None
        add_liveness_metrics(metrics.registry, ttl_seconds(interval, linger, PUSH_TIMEOUT_SECONDS))

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.next_delay())
            self.push()

    def next_delay(self) -> float:
        """One interval while pushes work; after failures, doubling up to the cap."""
        factor = 2 ** min(max(self.failed_in_row - 1, 0), 16)
        return self.interval * min(factor, BACKOFF_MAX_INTERVALS)

    def push(self) -> bool:
        for update in self.before_push:
            update()
        try:
            push_to_gateway(
                self.gateway,
                job=JOB,
                registry=self.metrics.registry,
                grouping_key=self.grouping,
                timeout=PUSH_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            # Whatever the transport raises (refused, reset, timeout, HTTP error), the
            # test goes on: pushing is a side channel.
            self._failed(exc)
            return False
        self._succeeded()
        return True

    def _failed(self, exc: BaseException) -> None:
        self.metrics.push_failures.labels(self.metrics.config).inc()
        self.failed_in_row += 1
        if self.failed_in_row == 1:
            cap = self.interval * BACKOFF_MAX_INTERVALS
            self._say(
                logging.WARNING,
                f"cannot push to the Pushgateway at {self.gateway} ({exc}); retrying every "
                f"{self.interval:g} to {cap:g} s, the test goes on",
            )

    def _succeeded(self) -> None:
        now = time.monotonic()
        if self.failed_in_row:
            self._say(
                logging.INFO,
                f"pushes to the Pushgateway at {self.gateway} resumed after "
                f"{self.failed_in_row} failed attempts ({now - self._last_success:.1f} s "
                "without a successful push)",
            )
        self.failed_in_row = 0
        self._ever_pushed = True
        self._last_success = now

    def _say(self, level: int, message: str) -> None:
        """Log, at most once a minute per level: a flapping Pushgateway must not flood the log."""
        now = time.monotonic()
        if now - self._last_said.get(level, -float("inf")) >= WARN_EVERY_SECONDS:
            self._last_said[level] = now
            log.log(level, message)

    def finish(self) -> None:
        """Final push, one scrape interval for Prometheus to read it, then delete the group.

        A Pushgateway that answered earlier in the run is probably restarting: the final
        push is retried every interval for up to `final_timeout` seconds. One that never
        answered is taken as absent, so the run ends without waiting for it.
        """
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        patience = self.final_timeout if self._ever_pushed else 0.0
        deadline = time.monotonic() + patience
        while not self.push():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self._ever_pushed:
                    log.warning(
                        "gave up pushing the final state of run %s after %.0f s: the "
                        "Pushgateway at %s does not answer; Prometheus keeps what was pushed "
                        "before",
                        self.run_id,
                        patience,
                        self.gateway,
                    )
                return
            # The run is over and waits only for this: retry every interval, no backoff.
            gevent.sleep(min(self.interval, remaining))
        gevent.sleep(self.linger)
        try:
            delete_from_gateway(
                self.gateway, job=JOB, grouping_key=self.grouping, timeout=PUSH_TIMEOUT_SECONDS
            )
        except Exception as exc:
            # The group's TTL runs out and the next run (or `up`) removes it.
            log.warning(
                "cannot delete run %s's group from the Pushgateway (%s); the next run removes it",
                self.run_id,
                exc,
            )


def instance_name(runner: Any) -> str:
    role = role_of(runner)
    if role == "worker":
        return str(runner.client_id)
    return f"{socket.gethostname()}-{role}"


class ProcessCpu:
    """This process's CPU, as a % of what it may use: one core, or its cgroup's quota when
    it runs under one (a container limit, or the experiment runner's generator budget)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        paths = CgroupPaths.of_process()
        quota = read_snapshot(paths).cpu_limit_cores if paths else None
        self.capacity = min(quota, 1.0) if quota else 1.0
        self.reset()

    def reset(self) -> None:
        """Start a new measuring interval (start-up work is not the run's load)."""
        self.process.cpu_percent(None)

    def sample(self) -> float:
        return self.process.cpu_percent(None) / self.capacity
