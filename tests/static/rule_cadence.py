"""promtool unit tests of the rules at the cadence each runtime really scrapes.

The native runtime scrapes and evaluates every 2 s (NativeSettings.scrape_interval_seconds),
the Docker runtime every 5 s (prometheus/prometheus.docker.yml). One definition here,
written as rates and levels rather than samples, becomes one promtool test file per
cadence: prometheus/tests/rules_<n>s_test.yml. The files are committed so that anyone can
run `promtool test rules prometheus/tests/*.yml`; tests/static/test_prometheus_rules.py
runs them and fails when they differ from what this module writes. To rewrite them:

    .venv/bin/python -m tests.static.rule_cadence

Every alert has a negative case (healthy input: silent), a boundary on its `for`
(one evaluation before it elapses: silent; when it does: firing) and a boundary on its
threshold (the threshold itself and the nearest value on the other side).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lab import slo
from tests.support import REPO

TESTS_DIR = REPO / "prometheus" / "tests"
RULE_FILES = (
    "targets.yml",
    "layers.yml",
    "replicas.yml",
    "loadgen.yml",
    "slo.yml",
    "alerts.yml",
    "lab.yml",
)
# Long enough for a full rate window (1 m) and the longest `for` (1 m) past activation.
DURATION_SECONDS = 80
# Where value checks are read: well inside the data, every 1 m window full.
LATE = 70

CONFIG = "r1-c1.0-m1g"
API = f'job="api", config="{CONFIG}", replica="replica-1"'
PREDICT = f'{API}, handler="/predict", method="POST"'


@dataclass(frozen=True)
class Cadence:
    """One runtime's scrape and evaluation interval."""

    seconds: int

    @property
    def steps(self) -> int:
        return DURATION_SECONDS // self.seconds

    def counter(self, per_second: float, start: int = 0) -> str:
        """A counter rising `per_second` from 0 at `start` (absent before)."""
        missing = start // self.seconds
        rising = f"0+{_number(per_second * self.seconds)}x{self.steps - missing}"
        return f"_x{missing} {rising}" if missing else rising

    def level(self, value: float) -> str:
        return f"{_number(value)}x{self.steps}"

    def switch(self, before: float, after: float, at: int) -> str:
        """A gauge at `before` until `at` seconds, then at `after`."""
        first = at // self.seconds
        return f"{_number(before)}x{first - 1} {_number(after)}x{self.steps - first}"

    def seconds_text(self, value: float) -> str:
        return f"{_number(value)}s"


def _number(value: float) -> str:
    return f"{value:.10g}"


@dataclass
class Case:
    """One promtool test: input series, then recorded values and alerts to expect."""

    name: str
    series: dict[str, str]
    samples: list[tuple[int, str, list[tuple[str, float]]]] = field(default_factory=list)
    alerts: list[tuple[int, str, list[dict[str, Any]]]] = field(default_factory=list)

    def expect(self, at: int, expr: str, *samples: tuple[str, float]) -> Case:
        self.samples.append((at, expr, list(samples)))
        return self

    def alert(self, at: int, name: str, *fired: dict[str, Any]) -> Case:
        self.alerts.append((at, name, list(fired)))
        return self

    def render(self, cadence: Cadence) -> dict[str, Any]:
        test: dict[str, Any] = {
            "name": f"{self.name} (every {cadence.seconds} s)",
            "interval": cadence.seconds_text(cadence.seconds),
            "input_series": [{"series": s, "values": v} for s, v in self.series.items()],
        }
        checks = []
        for at, expr, samples in self.samples:
            when = cadence.seconds_text(at)
            # promtool compares values as printed, to the last digit: first the exact set
            # of series, then each value within 1e-9 of the one expected.
            checks.append(
                {
                    "expr": f"({expr}) * 0",
                    "eval_time": when,
                    "exp_samples": [
                        {"labels": _nameless(labels), "value": 0} for labels, _ in samples
                    ],
                }
            )
            checks.extend(
                {
                    "expr": f"abs({labels} - {value!r}) < bool 1e-9",
                    "eval_time": when,
                    "exp_samples": [{"labels": _nameless(labels), "value": 1}],
                }
                for labels, value in samples
            )
        if checks:
            test["promql_expr_test"] = checks
        if self.alerts:
            test["alert_rule_test"] = [
                {"eval_time": cadence.seconds_text(at), "alertname": name, "exp_alerts": fired}
                for at, name, fired in self.alerts
            ]
        return test


def _nameless(series: str) -> str:
    """`name{labels}` without its name, as an arithmetic result is labelled."""
    return series[series.index("{") :] if "{" in series else "{}"


def group_order() -> list[str]:
    """Every rule group, in the order of RULE_FILES and of the groups in each file: a rule
    then reads what the groups before it recorded in the same evaluation (promtool
    otherwise evaluates groups in an arbitrary order, one evaluation apart)."""
    return [
        group["name"]
        for name in RULE_FILES
        for group in yaml.safe_load((REPO / "prometheus" / "rules" / name).read_text())["groups"]
    ]


def fired(labels: dict[str, str], summary: str, description: str | None = None) -> dict[str, Any]:
    annotations = {"summary": summary}
    if description is not None:
        annotations["description"] = description
    return {"exp_labels": labels, "exp_annotations": annotations}


# The first evaluation at which a rate over counters that start at 0 exists: the second
# sample. An alert on it is active from then, and fires once its `for` has elapsed.
def rate_active(c: Cadence) -> int:
    return c.seconds


def for_boundary(
    case: Case, name: str, active: int, hold: int, c: Cadence, *alert: dict[str, Any]
) -> Case:
    """Silent one evaluation before `for` elapses, firing at the first evaluation after."""
    fires = active + -(-hold // c.seconds) * c.seconds
    return case.alert(fires - c.seconds, name).alert(fires, name, *alert)


def server_traffic(
    c: Cadence, ok: float, failed: float, under_half: float, under_one: float, over_one: float
) -> dict[str, str]:
    """One replica's prediction requests: `ok` 200s and `failed` 503s a second; of all of
    them, `under_half` took up to 0.5 s, `under_one` 0.5-1 s and `over_one` 1-1.5 s."""
    half, one, most = under_half, under_half + under_one, under_half + under_one + over_one
    return {
        f'up{{{API}, instance="a:1"}}': c.level(1),
        f'http_requests_total{{{PREDICT}, status="200"}}': c.counter(ok),
        f'http_requests_total{{{PREDICT}, status="503"}}': c.counter(failed),
        f'http_request_duration_seconds_bucket{{{PREDICT}, status="200", le="0.5"}}': c.counter(
            half
        ),
        f'http_request_duration_seconds_bucket{{{PREDICT}, status="200", le="1.0"}}': c.counter(
            one
        ),
        f'http_request_duration_seconds_bucket{{{PREDICT}, status="200", le="1.5"}}': c.counter(
            most
        ),
        f'http_request_duration_seconds_bucket{{{PREDICT}, status="200", le="60.0"}}': c.counter(
            most
        ),
        f'http_request_duration_seconds_bucket{{{PREDICT}, status="200", le="+Inf"}}': c.counter(
            most
        ),
        f'http_request_duration_seconds_count{{{PREDICT}, status="200"}}': c.counter(most),
    }


def slo_label(layer: str) -> dict[str, str]:
    return {"severity": "critical", "config": CONFIG, "layer": layer}


def slo_cases(c: Cadence) -> list[Case]:
    error_summary = f"{CONFIG}: server error ratio {{}} (SLO < 1 %)"
    p95_summary = f"{CONFIG}: server P95 of all requests {{}} (SLO < 1 s)"
    breaking = Case("server layer breaks the SLO", server_traffic(c, 38, 2, 20, 0, 20))
    breaking.expect(
        LATE,
        'config:requests:rate1m{layer="server"}',
        (f'config:requests:rate1m{{config="{CONFIG}", layer="server"}}', 40),
    )
    breaking.expect(
        LATE,
        'config:error_ratio:rate1m{layer="server"}',
        (f'config:error_ratio:rate1m{{config="{CONFIG}", layer="server"}}', 0.05),
    )
    # 20 of 40 requests/s under 0.5 s and 20 between 1 and 1.5 s: rank 38 lies 18/20 into
    # the 1-1.5 s bucket.
    breaking.expect(
        LATE,
        'config:latency_seconds:p95{layer="server"}',
        (f'config:latency_seconds:p95{{config="{CONFIG}", layer="server"}}', 1.45),
    )
    breaking.expect(
        LATE,
        'config:slo_good:ratio_rate1m{layer="server"}',
        (f'config:slo_good:ratio_rate1m{{config="{CONFIG}", layer="server"}}', 0.5),
    )
    breaking.expect(
        LATE,
        'config:slo_met:rate1m{layer="server"}',
        (f'config:slo_met:rate1m{{config="{CONFIG}", layer="server"}}', 0),
    )
    breaking.expect(
        LATE,
        'config:requests_within_slo:rate1m{layer="server"}',
        (f'config:requests_within_slo:rate1m{{config="{CONFIG}", layer="server"}}', 0),
    )
    breaking.expect(
        LATE,
        "replica:requests:rate1m",
        (f'replica:requests:rate1m{{config="{CONFIG}", replica="replica-1"}}', 40),
    )
    for_boundary(
        breaking,
        "ErrorRatioAboveSLO",
        rate_active(c),
        30,
        c,
        fired(slo_label("server"), error_summary.format("5%")),
    )
    for_boundary(
        breaking,
        "P95AboveSLO",
        rate_active(c),
        30,
        c,
        fired(slo_label("server"), p95_summary.format("1.45s")),
    )

    # Just past the objective on both halves: 1.1 % errors, and 1 of the 10 slowest in
    # a hundred beyond 1 s (P95 1/6 into the 1-1.5 s bucket). Both alerts fire.
    past = Case("server layer just past the objective", server_traffic(c, 989, 11, 90, 4, 6))
    past.expect(
        LATE,
        'config:error_ratio:rate1m{layer="server"}',
        (f'config:error_ratio:rate1m{{config="{CONFIG}", layer="server"}}', 0.011),
    )
    past.expect(
        LATE,
        'config:latency_seconds:p95{layer="server"}',
        (f'config:latency_seconds:p95{{config="{CONFIG}", layer="server"}}', 1 + 0.5 / 6),
    )
    past.expect(
        LATE,
        'config:slo_met:rate1m{layer="server"}',
        (f'config:slo_met:rate1m{{config="{CONFIG}", layer="server"}}', 0),
    )
    past.alert(LATE, "ErrorRatioAboveSLO", fired(slo_label("server"), error_summary.format("1.1%")))
    past.alert(LATE, "P95AboveSLO", fired(slo_label("server"), p95_summary.format("1.083s")))

    # Just inside on both halves: 0.99 % errors, P95 5/6 into the 0.5-1 s bucket. The
    # SLO is met and nothing fires.
    inside = Case("server layer just inside the objective", server_traffic(c, 9901, 99, 90, 6, 4))
    inside.expect(
        LATE,
        'config:latency_seconds:p95{layer="server"}',
        (f'config:latency_seconds:p95{{config="{CONFIG}", layer="server"}}', 0.5 + 0.5 * 5 / 6),
    )
    inside.expect(
        LATE,
        'config:slo_met:rate1m{layer="server"}',
        (f'config:slo_met:rate1m{{config="{CONFIG}", layer="server"}}', 1),
    )
    inside.expect(
        LATE,
        'config:requests_within_slo:rate1m{layer="server"}',
        (f'config:requests_within_slo:rate1m{{config="{CONFIG}", layer="server"}}', 10000),
    )
    inside.alert(LATE, "ErrorRatioAboveSLO").alert(LATE, "P95AboveSLO")
    return [breaking, past, inside]


def client_cases(c: Cadence) -> list[Case]:
    """Locust's view: P95 of all requests against P95 of successful ones, the share under
    1 s, and the saturated generator."""
    run = (
        f'job="locust", run_id="run-a", instance="w1", config="{CONFIG}", method="POST", '
        'name="POST /predict"'
    )
    series = {
        f'locust_requests_total{{{run}, result="success"}}': c.counter(97),
        f'locust_requests_total{{{run}, result="failure"}}': c.counter(3),
        # Successes: 90/s under 0.2 s, 7/s between 0.5 and 0.75 s. Failures: 3/s timing out
        # beyond the top bucket (60 s).
        f'locust_request_duration_seconds_bucket{{{run}, result="success", le="0.2"}}': c.counter(
            90
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="success", le="0.75"}}': c.counter(
            97
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="success", le="1.0"}}': c.counter(
            97
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="success", le="60.0"}}': c.counter(
            97
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="success", le="+Inf"}}': c.counter(
            97
        ),
        f'locust_request_duration_seconds_count{{{run}, result="success"}}': c.counter(97),
        f'locust_request_duration_seconds_bucket{{{run}, result="failure", le="0.2"}}': c.counter(
            0
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="failure", le="0.75"}}': c.counter(
            0
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="failure", le="1.0"}}': c.counter(
            0
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="failure", le="60.0"}}': c.counter(
            0
        ),
        f'locust_request_duration_seconds_bucket{{{run}, result="failure", le="+Inf"}}': c.counter(
            3
        ),
        f'locust_request_duration_seconds_count{{{run}, result="failure"}}': c.counter(3),
    }
    case = Case("client P95 of all requests, of successes, and the share under 1 s", series)
    # All requests: rank 95 of 100 lies in 0.2-0.75 s, 5/7 of the way: 0.2 + 0.55 * 5/7.
    case.expect(
        LATE,
        'config:latency_seconds:p95{layer="client"}',
        (f'config:latency_seconds:p95{{config="{CONFIG}", layer="client"}}', 0.2 + 0.55 * 5 / 7),
    )
    # Successes only: rank 92.15 of 97, 2.15/7 into the same bucket.
    case.expect(
        LATE,
        'config:latency_success_seconds:p95{layer="client"}',
        (
            f'config:latency_success_seconds:p95{{config="{CONFIG}", layer="client"}}',
            0.2 + 0.55 * (0.95 * 97 - 90) / 7,
        ),
    )
    # 97 of 100 succeeded under 1 s; the 3 timeouts count against the share.
    case.expect(
        LATE,
        'config:slo_good:ratio_rate1m{layer="client"}',
        (f'config:slo_good:ratio_rate1m{{config="{CONFIG}", layer="client"}}', 0.97),
    )
    case.expect(
        LATE,
        'config:error_ratio:rate1m{layer="client"}',
        (f'config:error_ratio:rate1m{{config="{CONFIG}", layer="client"}}', 0.03),
    )
    case.expect(
        LATE,
        'config:latency_overflow:rate1m{layer="client"}',
        (f'config:latency_overflow:rate1m{{config="{CONFIG}", layer="client"}}', 3),
    )
    case.alert(
        LATE,
        "ErrorRatioAboveSLO",
        fired(slo_label("client"), f"{CONFIG}: client error ratio 3% (SLO < 1 %)"),
    )
    case.alert(LATE, "P95AboveSLO")
    return [case]


def edge_cases(c: Cadence) -> list[Case]:
    """Two configs up at once, each with its own prediction router; /ready through the
    `api` router never counts."""

    def router(name: str, code: str) -> str:
        return (
            f'job="traefik", router="{name}", service="api@file", code="{code}", '
            'method="POST", protocol="http"'
        )

    def bucket(name: str, le: str) -> str:
        return f'traefik_router_request_duration_seconds_bucket{{{router(name, "200")}, le="{le}"}}'

    old, new = "predict-r1-c0_5-m512m@file", "predict-r2-c1_0-m1g@docker"
    series = {
        'up{job="api", config="r1-c0.5-m512m", replica="a", instance="a:1"}': c.level(1),
        'up{job="api", config="r2-c1.0-m1g", replica="b", instance="b:1"}': c.level(1),
        f"traefik_router_requests_total{{{router(old, '200')}}}": c.counter(30),
        f"traefik_router_requests_total{{{router(old, '502')}}}": c.counter(1),
        f"traefik_router_requests_total{{{router(new, '200')}}}": c.counter(70),
        f"traefik_router_requests_total{{{router('api@file', '200')}}}": c.counter(500),
        bucket(old, "0.1"): c.counter(10),
        bucket(old, "1.0"): c.counter(30),
        bucket(old, "60.0"): c.counter(30),
        bucket(old, "+Inf"): c.counter(30),
        bucket(new, "0.1"): c.counter(70),
        bucket(new, "1.0"): c.counter(70),
        bucket(new, "60.0"): c.counter(70),
        bucket(new, "+Inf"): c.counter(70),
        # Health checks, through the other router: fast, numerous, and never the edge layer.
        bucket("api@file", "0.1"): c.counter(500),
        bucket("api@file", "+Inf"): c.counter(500),
    }
    case = Case("the edge credits each config's router to that config", series)
    case.expect(
        LATE,
        'config:requests:rate1m{layer="edge"}',
        ('config:requests:rate1m{config="r1-c0.5-m512m", layer="edge"}', 31),
        ('config:requests:rate1m{config="r2-c1.0-m1g", layer="edge"}', 70),
    )
    case.expect(
        LATE,
        'config:errors:rate1m{layer="edge"}',
        ('config:errors:rate1m{config="r1-c0.5-m512m", layer="edge"}', 1),
        ('config:errors:rate1m{config="r2-c1.0-m1g", layer="edge"}', 0),
    )
    # r1: 10 of 30 under 0.1 s, the rest up to 1 s: rank 28.5 is 18.5/20 into 0.1-1 s.
    case.expect(
        LATE,
        'config:latency_seconds:p95{layer="edge"}',
        ('config:latency_seconds:p95{config="r1-c0.5-m512m", layer="edge"}', 0.1 + 0.9 * 18.5 / 20),
        ('config:latency_seconds:p95{config="r2-c1.0-m1g", layer="edge"}', 0.095),
    )
    case.expect(
        LATE,
        'config:slo_good:ratio_rate1m{layer="edge"}',
        ('config:slo_good:ratio_rate1m{config="r1-c0.5-m512m", layer="edge"}', 1),
        ('config:slo_good:ratio_rate1m{config="r2-c1.0-m1g", layer="edge"}', 1),
    )
    return [case]


def resource_cases(c: Cadence) -> list[Case]:
    """CPU and memory against limits: process metrics natively, cAdvisor's where they
    exist, and cAdvisor alone; throttling from either."""
    cfg = 'config="r3-c0.5-m512m"'

    def api(name: str, replica: str) -> str:
        return f'{name}{{job="api", {cfg}, replica="{replica}"}}'

    def cad(name: str, replica: str, extra: str = "") -> str:
        more = f", {extra}" if extra else ""
        return f'{name}{{job="cadvisor", {cfg}, replica="{replica}"{more}}}'

    series = {
        # replica-1: native only (process and cgroup metrics of the replica itself).
        api("process_cpu_seconds_total", "replica-1"): c.counter(0.5),
        api("replica_cpu_limit_cores", "replica-1"): c.level(0.5),
        api("replica_cpu_cfs_periods_total", "replica-1"): c.counter(10),
        api("replica_cpu_cfs_throttled_periods_total", "replica-1"): c.counter(4),
        api("replica_cpu_cfs_throttled_seconds_total", "replica-1"): c.counter(0.2),
        api("process_resident_memory_bytes", "replica-1"): c.level(268435456),
        api("replica_memory_limit_bytes", "replica-1"): c.level(536870912),
        # replica-2: both; cAdvisor wins (its quota, its usage, its throttling).
        api("process_cpu_seconds_total", "replica-2"): c.counter(0.2),
        api("replica_cpu_limit_cores", "replica-2"): c.level(2),
        api("replica_cpu_cfs_periods_total", "replica-2"): c.counter(10),
        api("replica_cpu_cfs_throttled_periods_total", "replica-2"): c.counter(9),
        cad("container_cpu_usage_seconds_total", "replica-2", 'cpu="total"'): c.counter(0.25),
        cad("container_spec_cpu_quota", "replica-2"): c.level(50000),
        cad("container_spec_cpu_period", "replica-2"): c.level(100000),
        cad("container_cpu_cfs_periods_total", "replica-2"): c.counter(10),
        cad("container_cpu_cfs_throttled_periods_total", "replica-2"): c.counter(1),
        cad("container_cpu_cfs_throttled_seconds_total", "replica-2"): c.counter(0.05),
        cad("container_memory_working_set_bytes", "replica-2"): c.level(134217728),
        cad("container_spec_memory_limit_bytes", "replica-2"): c.level(536870912),
        api("process_resident_memory_bytes", "replica-2"): c.level(100000000),
        # replica-3: cAdvisor only, a container without a CPU quota (spec quota -1 and no
        # limit the replica reports): no ratio rather than a wrong one.
        cad("container_cpu_usage_seconds_total", "replica-3", 'cpu="total"'): c.counter(0.1),
        cad("container_spec_cpu_quota", "replica-3"): c.level(-1),
        cad("container_spec_cpu_period", "replica-3"): c.level(100000),
    }

    def r(name: str, replica: str) -> str:
        return f'{name}{{{cfg}, replica="{replica}"}}'

    case = Case("replica resources from process metrics, cAdvisor, or both", series)
    case.expect(
        LATE,
        "replica:cpu_usage:ratio_limit",
        (r("replica:cpu_usage:ratio_limit", "replica-1"), 1),
        (r("replica:cpu_usage:ratio_limit", "replica-2"), 0.5),
    )
    case.expect(
        LATE,
        "replica:cpu_usage_cores:rate1m",
        (r("replica:cpu_usage_cores:rate1m", "replica-1"), 0.5),
        (r("replica:cpu_usage_cores:rate1m", "replica-2"), 0.25),
        (r("replica:cpu_usage_cores:rate1m", "replica-3"), 0.1),
    )
    case.expect(
        LATE,
        "replica:cpu_limit_cores",
        (r("replica:cpu_limit_cores", "replica-1"), 0.5),
        (r("replica:cpu_limit_cores", "replica-2"), 0.5),
    )
    case.expect(
        LATE,
        "replica:cpu_throttled_periods:ratio_rate1m",
        (r("replica:cpu_throttled_periods:ratio_rate1m", "replica-1"), 0.4),
        (r("replica:cpu_throttled_periods:ratio_rate1m", "replica-2"), 0.1),
    )
    # Seconds throttled per second: a ratio of wall time, 0.2 means 20 % of it.
    case.expect(
        LATE,
        "replica:cpu_throttled_seconds:rate1m",
        (r("replica:cpu_throttled_seconds:rate1m", "replica-1"), 0.2),
        (r("replica:cpu_throttled_seconds:rate1m", "replica-2"), 0.05),
    )
    case.expect(
        LATE,
        "replica:memory_usage:ratio_limit",
        (r("replica:memory_usage:ratio_limit", "replica-1"), 0.5),
        (r("replica:memory_usage:ratio_limit", "replica-2"), 0.25),
    )
    throttled = "{} ({}) is throttled in {} of CPU periods: its quota is the bottleneck"
    for_boundary(
        case,
        "ReplicaCPUThrottled",
        rate_active(c),
        60,
        c,
        fired(
            {"severity": "info", "config": "r3-c0.5-m512m", "replica": "replica-1"},
            throttled.format("replica-1", "r3-c0.5-m512m", "40%"),
        ),
    )

    # The threshold, 25 % of periods throttled: 24 % does not fire, 26 % does.
    def periods(replica: str, total: float, throttled: float) -> dict[str, str]:
        labels = f'job="api", {cfg}, replica="{replica}"'
        return {
            f"replica_cpu_cfs_periods_total{{{labels}}}": c.counter(total),
            f"replica_cpu_cfs_throttled_periods_total{{{labels}}}": c.counter(throttled),
        }

    boundary = Case(
        "throttling either side of the threshold",
        {**periods("below", 100, 24), **periods("above", 100, 26)},
    )
    boundary.alert(
        LATE,
        "ReplicaCPUThrottled",
        fired(
            {"severity": "info", "config": "r3-c0.5-m512m", "replica": "above"},
            throttled.format("above", "r3-c0.5-m512m", "26%"),
        ),
    )
    return [case, boundary]


def capacity_cases(c: Cadence) -> list[Case]:
    cfg = f'job="api", config="{CONFIG}", replica="replica-1"'

    predict = f'{cfg}, handler="/predict", method="POST"'
    shed_labels = f'{cfg}, handler="/predict", reason="queue_delay"'

    def shedding(total: float, shed: float) -> dict[str, str]:
        return {
            f'http_requests_total{{{predict}, status="200"}}': c.counter(total - shed),
            f'http_requests_total{{{predict}, status="503"}}': c.counter(shed),
            f"api_requests_shed_total{{{shed_labels}}}": c.counter(shed),
        }

    summary = (
        f"{CONFIG}: replicas shed {{}} of predictions with 503 and Retry-After: the "
        "deployment is past its capacity; add replicas or CPU"
    )
    labels = {"severity": "warning", "config": CONFIG, "layer": "server"}
    shed = Case("replicas shed a quarter of their predictions", shedding(40, 10))
    shed.expect(
        LATE,
        "config:shed_ratio:rate1m",
        (f'config:shed_ratio:rate1m{{config="{CONFIG}", layer="server"}}', 0.25),
    )
    for_boundary(
        shed, "ReplicasShedLoad", rate_active(c), 30, c, fired(labels, summary.format("25%"))
    )
    at = Case("shedding 0.99 % does not fire", shedding(10000, 99))
    at.alert(LATE, "ReplicasShedLoad")
    above = Case("shedding 1.1 % fires", shedding(1000, 11))
    above.alert(LATE, "ReplicasShedLoad", fired(labels, summary.format("1.1%")))
    none = Case("no shedding", shedding(100, 0))
    none.expect(
        LATE,
        "config:shed_ratio:rate1m",
        (f'config:shed_ratio:rate1m{{config="{CONFIG}", layer="server"}}', 0),
    )
    none.alert(LATE, "ReplicasShedLoad")
    return [shed, at, above, none]


def generator_cases(c: Cadence) -> list[Case]:
    def cpu(run: str) -> str:
        labels = f'run_id="{run}", instance="w1", config="{CONFIG}", role="standalone"'
        return f'locust_cpu_percent{{job="locust", {labels}}}'

    summary = (
        "Locust run {} uses {}% CPU: its latencies are inflated; results are load-generator-bound"
    )
    case = Case(
        "a saturated load generator",
        {cpu("busy"): c.switch(50, 95, 30), cpu("at"): c.level(90), cpu("calm"): c.level(40)},
    )
    labels = {"severity": "warning", "config": CONFIG, "run_id": "busy"}
    for_boundary(
        case, "LoadGeneratorSaturated", 30, 15, c, fired(labels, summary.format("busy", "95"))
    )
    case.expect(
        LATE,
        "run:generator_cpu_percent:max",
        (f'run:generator_cpu_percent:max{{config="{CONFIG}", run_id="busy"}}', 95),
        (f'run:generator_cpu_percent:max{{config="{CONFIG}", run_id="at"}}', 90),
        (f'run:generator_cpu_percent:max{{config="{CONFIG}", run_id="calm"}}', 40),
    )
    return [case]


def overflow_cases(c: Cadence) -> list[Case]:
    model = f'job="api", config="{CONFIG}", replica="replica-1"'
    server = f'{model}, handler="/predict", method="POST", status="200"'
    summary = (
        f"{CONFIG}: {{}} requests beyond the top latency bucket (60 s; 1 s for a model call); "
        "quantiles read as the top bound"
    )
    series = {
        f'http_request_duration_seconds_bucket{{{server}, le="60.0"}}': c.counter(10),
        f'http_request_duration_seconds_bucket{{{server}, le="+Inf"}}': c.counter(11),
        # Model calls: 4/s under 0.5 s, 1/s beyond the top inference bucket (1 s), so its
        # P95 reads as that bucket: the overflow says it is not a measurement.
        f'model_inference_seconds_bucket{{{model}, le="0.5"}}': c.counter(4),
        f'model_inference_seconds_bucket{{{model}, le="1.0"}}': c.counter(4),
        f'model_inference_seconds_bucket{{{model}, le="+Inf"}}': c.counter(5),
        f"model_inference_seconds_count{{{model}}}": c.counter(5),
    }
    case = Case("latencies beyond the top bucket, server and model", series)
    case.expect(
        LATE,
        "config:latency_overflow:rate1m",
        (f'config:latency_overflow:rate1m{{config="{CONFIG}", layer="model"}}', 1),
        (f'config:latency_overflow:rate1m{{config="{CONFIG}", layer="server"}}', 1),
    )
    case.expect(
        LATE,
        'config:latency_seconds:p95{layer="model"}',
        (f'config:latency_seconds:p95{{config="{CONFIG}", layer="model"}}', 1),
    )
    label = {"severity": "warning", "config": CONFIG}
    for_boundary(
        case,
        "LatencyOverflowsTopBucket",
        rate_active(c),
        15,
        c,
        fired({**label, "layer": "model"}, summary.format("model")),
        fired({**label, "layer": "server"}, summary.format("server")),
    )
    quiet = Case(
        "nothing beyond the top bucket",
        {
            f'http_request_duration_seconds_bucket{{{server}, le="60.0"}}': c.counter(10),
            f'http_request_duration_seconds_bucket{{{server}, le="+Inf"}}': c.counter(10),
        },
    )
    quiet.expect(
        LATE,
        "config:latency_overflow:rate1m",
        (f'config:latency_overflow:rate1m{{config="{CONFIG}", layer="server"}}', 0),
    )
    quiet.alert(LATE, "LatencyOverflowsTopBucket")
    return [case, quiet]


def availability_cases(c: Cadence) -> list[Case]:
    """Targets down, the replicas-up count that must read 0 rather than vanish, and a
    restart within `for` that stays silent."""
    down_at = 30
    replica = f'job="api", config="{CONFIG}", replica="replica-1", instance="127.0.0.1:8101"'
    series = {
        f"up{{{replica}}}": c.switch(1, 0, down_at),
        'up{job="traefik", instance="127.0.0.1:8080"}': c.switch(1, 0, down_at),
        'up{job="pushgateway", instance="127.0.0.1:9091"}': c.switch(1, 0, down_at),
        # Back within 15 s: never reported.
        'up{job="supervisor", instance="a:1"}': (
            f"1x{down_at // c.seconds - 1} 0x{10 // c.seconds} 1x{c.steps}"
        ),
    }
    case = Case("targets down", series)
    case.expect(
        down_at - c.seconds,
        "config:replicas_up:count",
        (f'config:replicas_up:count{{config="{CONFIG}"}}', 1),
    )
    case.expect(
        LATE, "config:replicas_up:count", (f'config:replicas_up:count{{config="{CONFIG}"}}', 0)
    )
    for_boundary(
        case,
        "ReplicaDown",
        down_at,
        15,
        c,
        fired(
            {
                "severity": "critical",
                "job": "api",
                "config": CONFIG,
                "replica": "replica-1",
                "instance": "127.0.0.1:8101",
            },
            f"Replica replica-1 ({CONFIG}) is not answering scrapes",
            "Prometheus cannot scrape 127.0.0.1:8101; the replica crashed, hangs or is being "
            "replaced.",
        ),
    )
    for_boundary(
        case,
        "TraefikDown",
        down_at,
        15,
        c,
        fired(
            {"severity": "critical", "job": "traefik", "instance": "127.0.0.1:8080"},
            "Traefik is not answering scrapes: the API is unreachable through :8000",
        ),
    )
    for_boundary(
        case,
        "PushgatewayDown",
        down_at,
        30,
        c,
        fired(
            {"severity": "warning", "job": "pushgateway", "instance": "127.0.0.1:9091"},
            "The Pushgateway is down: load-generator metrics are being lost",
        ),
    )
    case.alert(LATE, "SupervisorDown")
    # Negative: before anything went down.
    for name in ("ReplicaDown", "TraefikDown", "PushgatewayDown"):
        case.alert(down_at - c.seconds, name)
    return [case]


def supervision_cases(c: Cadence) -> list[Case]:
    def looping(component: str) -> str:
        labels = f'job="supervisor", instance="a:1", component="{component}"'
        return f"lab_component_crash_looping{{{labels}}}"

    looping_from = 30
    case = Case(
        "a crash loop and a dead supervisor",
        {
            looping("replica-2"): c.switch(0, 1, looping_from),
            looping("replica-1"): c.level(0),
            'up{job="supervisor", instance="a:1"}': c.switch(1, 0, looping_from),
        },
    )
    for_boundary(
        case,
        "ComponentCrashLooping",
        looping_from,
        30,
        c,
        fired(
            {"severity": "critical", "component": "replica-2"},
            "replica-2 keeps crashing: restarted with backoff, never stable for 30 s",
            "`make status` shows its last exit; .run/native/events.log has every restart.",
        ),
    )
    for_boundary(
        case,
        "SupervisorDown",
        looping_from,
        30,
        c,
        fired(
            {"severity": "warning", "job": "supervisor", "instance": "a:1"},
            "The native supervisor is not answering: crashed components stay down",
            "Run `make status`: it reports the dead supervisor and starts it again.",
        ),
    )
    case.alert(looping_from - c.seconds, "ComponentCrashLooping").alert(
        looping_from - c.seconds, "SupervisorDown"
    )
    return [case]


def objective_cases(c: Cadence) -> list[Case]:
    case = Case("the objective, as lab/slo.py defines it", {"unused": c.level(0)})
    case.expect(
        LATE, "slo:error_ratio:objective", ("slo:error_ratio:objective", slo.ERROR_RATIO_MAX)
    )
    case.expect(
        LATE, "slo:latency_quantile:objective", ("slo:latency_quantile:objective", slo.PERCENTILE)
    )
    case.expect(
        LATE,
        "slo:latency_seconds:objective",
        ("slo:latency_seconds:objective", slo.LATENCY_MAX_SECONDS),
    )
    return [case]


CASES: tuple[Callable[[Cadence], list[Case]], ...] = (
    objective_cases,
    slo_cases,
    client_cases,
    edge_cases,
    resource_cases,
    capacity_cases,
    generator_cases,
    overflow_cases,
    availability_cases,
    supervision_cases,
)


def render(cadence: Cadence) -> str:
    """The promtool test file for one cadence."""
    document = {
        "rule_files": [f"../rules/{name}" for name in RULE_FILES],
        "evaluation_interval": cadence.seconds_text(cadence.seconds),
        "group_eval_order": group_order(),
        "tests": [case.render(cadence) for make in CASES for case in make(cadence)],
    }
    header = (
        f"# promtool unit tests of prometheus/rules at a {cadence.seconds} s scrape and\n"
        "# evaluation interval. Written by tests/static/rule_cadence.py (edit that, then run\n"
        "#   .venv/bin/python -m tests.static.rule_cadence\n"
        "# ); run by `make test`, or by hand: promtool test rules prometheus/tests/*.yml\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=1000)


def path(cadence: Cadence) -> Path:
    return TESTS_DIR / f"rules_{cadence.seconds}s_test.yml"


def cadences() -> list[Cadence]:
    """The intervals both runtimes scrape at, read from their own configuration."""
    from lab.runtimes.native.settings import NativeSettings

    docker = yaml.safe_load((REPO / "prometheus" / "prometheus.docker.yml").read_text())
    docker_seconds = int(docker["global"]["scrape_interval"].removesuffix("s"))
    return [Cadence(NativeSettings().scrape_interval_seconds), Cadence(docker_seconds)]


if __name__ == "__main__":
    for each in cadences():
        path(each).write_text(render(each))
        print(f"wrote {path(each).relative_to(REPO)}")
