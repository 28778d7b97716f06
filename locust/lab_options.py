"""Command-line options of the lab's locustfile (each also an environment variable)."""

from __future__ import annotations

import os
import secrets
import time

from locust.argument_parser import LocustArgumentParser

from lab import slo
from locust import events

SHAPES = ("ramp", "steps", "spike", "open")


def default_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def arrival_schedule(options: object) -> list[float]:
    """The open model's rates: the steps of --arrival-rates, or the one --arrival-rate."""
    steps = str(getattr(options, "arrival_rates", "") or "")
    if steps:
        return [float(rate) for rate in steps.split(",") if rate.strip()]
    rate = float(getattr(options, "arrival_rate", 0.0) or 0.0)
    return [rate] if rate > 0 else []


def arrival_rate_at(options: object, elapsed: float) -> float:
    """The rate the open model offers `elapsed` seconds into the run (0: closed model)."""
    schedule = arrival_schedule(options)
    if not schedule:
        return 0.0
    step = float(getattr(options, "step_seconds", 30.0) or 30.0)
    return schedule[min(int(elapsed // step), len(schedule) - 1)]


@events.init_command_line_parser.add_listener
def add_arguments(parser: LocustArgumentParser) -> None:
    lab = parser.add_argument_group("capacity lab", "Run identity, load shape, metrics, SLO gate")
    lab.add_argument(
        "--run-id",
        default=os.environ.get("LOCUST_RUN_ID") or default_run_id(),
        help="Label of this run on every pushed series (default: time stamp)",
        env_var="LOCUST_RUN_ID",
    )
    lab.add_argument(
        "--config-label",
        default="unknown",
        help="Deployment under test, e.g. r2-c1.0-m1g (set by make load from the running stack)",
        env_var="LOCUST_CONFIG_LABEL",
    )
    lab.add_argument(
        "--shape",
        choices=SHAPES,
        default="ramp",
        help="ramp: -u users at -r per second, held; steps: users rise in --steps held steps; "
        "spike: a burst of --spike-factor x users mid-run; open: fixed --arrival-rate",
        env_var="LOCUST_SHAPE",
    )
    lab.add_argument(
        "--steps", type=int, default=5, help="Steps of the steps shape", env_var="LOCUST_STEPS"
    )
    lab.add_argument(
        "--spike-factor",
        type=float,
        default=3.0,
        help="Spike users = factor x -u",
        env_var="LOCUST_SPIKE_FACTOR",
    )
    lab.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        help="Open model: task runs per second for the whole run, spread over the -u users",
        env_var="LOCUST_ARRIVAL_RATE",
    )
    lab.add_argument(
        "--arrival-rates",
        default="",
        help="Open model in steps: comma-separated rates, each held --step-seconds (overrides "
        "--arrival-rate; the run ends after the last step)",
        env_var="LOCUST_ARRIVAL_RATES",
    )
    lab.add_argument(
        "--step-seconds",
        type=float,
        default=30.0,
        help="How long each rate of --arrival-rates is held",
        env_var="LOCUST_STEP_SECONDS",
    )
    lab.add_argument(
        "--think-time",
        type=float,
        default=1.0,
        help="Closed model: mean seconds between a user's tasks (uniform 0.5x to 1.5x)",
        env_var="LOCUST_THINK_TIME",
    )
    lab.add_argument(
        "--invalid-share",
        type=float,
        default=0.0,
        help="Share (0-1) of predictions sent with an invalid field; their 422 counts as a failure",
        env_var="LOCUST_INVALID_SHARE",
    )
    lab.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="Largest batch of the batch task",
        env_var="LOCUST_BATCH_SIZE",
    )
    lab.add_argument(
        "--pushgateway",
        default="http://127.0.0.1:9091",
        help="Pushgateway URL; empty disables pushing",
        env_var="LOCUST_PUSHGATEWAY",
    )
    lab.add_argument(
        "--push-interval",
        type=float,
        default=5.0,
        help="Seconds between pushes",
        env_var="LOCUST_PUSH_INTERVAL",
    )
    lab.add_argument(
        "--scrape-interval",
        type=float,
        default=5.0,
        help="Prometheus' scrape interval: the final push stays this long before it is deleted",
        env_var="LOCUST_SCRAPE_INTERVAL",
    )
    lab.add_argument(
        "--push-final-timeout",
        type=float,
        default=15.0,
        help="How long the final push is retried when the Pushgateway answered earlier in the "
        "run but not at the end (a restart); 0: one try",
        env_var="LOCUST_PUSH_FINAL_TIMEOUT",
    )
    lab.add_argument(
        "--summary-json",
        default="",
        help="Also write the end-of-run summary to this JSON file",
        env_var="LOCUST_SUMMARY_JSON",
    )
    lab.add_argument(
        "--check-p95",
        type=float,
        default=slo.LATENCY_MAX_SECONDS,
        help="SLO gate: fail (exit 3) when the P95 of all requests (failures included, as "
        f"lab/slo.py defines the SLO) exceeds this many seconds (default: "
        f"{slo.LATENCY_MAX_SECONDS:g})",
        env_var="LOCUST_CHECK_P95",
    )
