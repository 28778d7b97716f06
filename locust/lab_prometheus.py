"""Locust's statistics as Prometheus metrics, pushed to the Pushgateway.

Every request lands in prometheus_client metrics with the project's latency buckets,
success and failure apart. Each Locust process pushes its own registry every
--push-interval seconds under the grouping key job=locust, run_id, instance (the worker),
and every series carries the run's `config`. When the test stops (or Locust quits) the
process pushes a final state, waits one Prometheus scrape interval so the final values
are scraped, then deletes its group: the Pushgateway keeps nothing stale, Prometheus keeps
the history. A Pushgateway that is down never stops the test: a warning at most once a
minute, and the run goes on.
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

log = logging.getLogger("lab.prometheus")
# `_created` series double what is pushed and nothing reads them.
disable_created_metrics()
WARN_EVERY_SECONDS = 60


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
    ) -> None:
        self.metrics = metrics
        self.gateway = gateway
        self.grouping = {"run_id": run_id, "instance": instance}
        self.interval = interval
        self.linger = linger
        self._last_warning = 0.0
        self._greenlet: gevent.Greenlet | None = None
        self.before_push: list[Any] = []

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self.push()

    def push(self) -> bool:
        for update in self.before_push:
            update()
        try:
            push_to_gateway(
                self.gateway,
                job="locust",
                registry=self.metrics.registry,
                grouping_key=self.grouping,
                timeout=3,
            )
            return True
        except Exception as exc:
            self._warn(
                f"cannot push to the Pushgateway at {self.gateway} ({exc}); the test goes on"
            )
            return False

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(message)

    def finish(self) -> None:
        """Final push, one scrape interval for Prometheus to read it, then delete the group."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if not self.push():
            return
        gevent.sleep(self.linger)
        try:
            delete_from_gateway(self.gateway, job="locust", grouping_key=self.grouping, timeout=3)
        except Exception as exc:
            self._warn(f"cannot delete the run's group from the Pushgateway ({exc})")


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
