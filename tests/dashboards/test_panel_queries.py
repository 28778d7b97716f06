"""Every dashboard query, interpolated as Grafana would, returns real data from a real run.

One native stack with 2 replicas, a few traced requests, then a 40 s Locust run (2 % of the
predictions invalid, so failures by exception exist). Locust's series leave the Pushgateway
when the run ends, so every query is evaluated at an instant inside the run.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from monitoring.prom import Prometheus
from tests.dashboards import grafana
from tests.lab.runtimes.native.lab import NativeLab
from tests.load.locust_runner import run_locust
from tests.support import PENGUIN, REPO, wait_until

pytestmark = pytest.mark.slow

RUN_ID = "dashboards"
RUN_SECONDS = 40
# What Grafana substitutes for its built-ins, for a 5 s scrape interval and a range
# that holds the whole run.
BUILTINS = {"rate_interval": "20s", "interval": "5s", "range": "5m"}
QUERIES = grafana.all_queries()
PANEL_QUERIES = [query for query in QUERIES if query.kind == "panel"]
BY_KEY = {query.key: query for query in PANEL_QUERIES}


@dataclass(frozen=True)
class LoadedLab:
    lab: NativeLab
    started: float
    ended: float
    trace_ids: tuple[str, ...]
    locust_stderr: str
    values: dict[str, list[str]]

    @property
    def at(self) -> float:
        """An instant late in the run: Locust's series still exist, rates have samples."""
        return self.started + RUN_SECONDS - 5

    @property
    def prometheus(self) -> Prometheus:
        return self.lab.prometheus

    def promql(self, query: grafana.Query) -> str:
        expr = grafana.interpolate(query.expr, self.values, BUILTINS)
        assert "$" not in expr, f"unsubstituted variable in {expr}"
        return expr

    def exemplars(self, expr: str) -> list[dict[str, Any]]:
        """Exemplars of the series `expr` selects, over the run, as Grafana asks for them."""
        return prometheus_api(
            self.prometheus,
            "/api/v1/query_exemplars",
            query=expr,
            start=self.started - 60,
            end=self.ended,
        )


def prometheus_api(prometheus: Prometheus, path: str, **params: Any) -> Any:
    """The endpoints monitoring.prom does not wrap (label values, exemplars)."""
    body = prometheus.http.get(f"{prometheus.url}{path}", params=params).json()
    assert body["status"] == "success", body
    return body["data"]


def send_traced_predictions(lab: NativeLab, count: int = 10) -> tuple[str, ...]:
    """Predictions whose caller sampled the trace: their latency samples carry its id."""
    trace_ids = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            trace_id = secrets.token_hex(16)
            headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            response = client.post(f"{lab.api}/predict", json=PENGUIN, headers=headers)
            assert response.status_code == 200, response.text
            trace_ids.append(trace_id)
            # Across scrapes: a bucket exposes only its latest exemplar.
            time.sleep(0.3)
    return tuple(trace_ids)


def resolve_variables(
    lab: NativeLab, dashboard: dict[str, Any], start: float, end: float
) -> dict[str, list[str]]:
    """Run each variable's label_values query in order, as Grafana does; All = every value."""
    values: dict[str, list[str]] = {}
    for variable in dashboard["templating"]["list"]:
        selector, label = grafana.parse_label_values(grafana.variable_query(variable))
        params = {"match[]": grafana.interpolate(selector, values, BUILTINS)}
        values[variable["name"]] = prometheus_api(
            lab.prometheus, f"/api/v1/label/{label}/values", start=start, end=end, **params
        )
    return values


@pytest.fixture(scope="module")
def loaded(lab: NativeLab) -> LoadedLab:
    wait_until(
        lambda: lab.prometheus.value("count(up == 1)") == 6, timeout=30, what="all 6 targets up"
    )
    trace_ids = send_traced_predictions(lab)
    started = time.time()
    result = run_locust(
        lab,
        "-u", "20", "-r", "10", "-t", f"{RUN_SECONDS}s", "--run-id", RUN_ID,
        "--think-time", "0.2", "--invalid-share", "0.02", "--check-fail-ratio", "0.2",
    )  # fmt: skip
    ended = time.time()
    assert result.returncode == 0, result.stderr[-3000:]
    values = resolve_variables(lab, grafana.dashboards()[0], started - 60, ended)
    return LoadedLab(lab, started, ended, trace_ids, result.stderr, values)


def test_variables_resolve_to_the_running_config_run_and_replicas(loaded: LoadedLab) -> None:
    state = loaded.lab.state()

    assert loaded.values["config"] == [state["label"]]
    assert RUN_ID in loaded.values["run_id"]
    assert loaded.values["replica"] == sorted(r["name"] for r in state["replicas"])
    assert f"=== capacity lab summary: run {RUN_ID}" in loaded.locust_stderr


@pytest.mark.parametrize("dashboard", grafana.dashboards(), ids=lambda dashboard: dashboard["uid"])
def test_every_dashboard_resolves_the_same_variables(
    loaded: LoadedLab, dashboard: dict[str, Any]
) -> None:
    values = resolve_variables(loaded.lab, dashboard, loaded.started - 60, loaded.ended)

    assert values == loaded.values


@pytest.mark.parametrize(
    "query", [q for q in QUERIES if q.kind == "annotation"], ids=lambda q: q.id
)
def test_run_annotation_marks_the_run_start_in_milliseconds(
    loaded: LoadedLab, query: grafana.Query
) -> None:
    samples = loaded.prometheus.query(loaded.promql(query), time=loaded.at)

    assert [s.labels["run_id"] for s in samples] == [RUN_ID]
    assert abs(samples[0].value / 1000 - loaded.started) < 10


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_panel_query_returns_data(loaded: LoadedLab, query: grafana.Query) -> None:
    expr = loaded.promql(query)
    if query.key in grafana.DOCKER_ONLY:
        # cAdvisor does not exist natively: Prometheus must accept the query, and the
        # panel's native counterpart must show the same thing.
        loaded.prometheus.query(expr, time=loaded.at)
        native = (query.dashboard, query.title, grafana.DOCKER_ONLY[query.key])
        expr = loaded.promql(BY_KEY[native])
    if grafana.CGROUP_ONLY_SERIES.search(expr) and loaded.lab.state()["cgroup_mode"] == "off":
        pytest.skip("replicas run without cgroup limits here: no throttling or OOM counters")

    samples = loaded.prometheus.query(expr, time=loaded.at)

    assert samples, f"no data: {expr}"
    assert any(math.isfinite(s.value) for s in samples), f"only NaN/Inf: {expr} -> {samples}"


def test_recorded_names_fed_by_cadvisor_have_data_natively(loaded: LoadedLab) -> None:
    fed = sorted(
        {
            rule["record"]
            for path in (REPO / "prometheus" / "rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]
            if "record" in rule and grafana.DOCKER_ONLY_SERIES.search(rule["expr"])
        }
    )
    if loaded.lab.state()["cgroup_mode"] == "off":
        fed = [name for name in fed if not grafana.CGROUP_ONLY_SERIES.search(name)]

    assert len(fed) >= 4
    empty = [name for name in fed if not loaded.prometheus.query(name, time=loaded.at)]
    assert empty == []


def test_prometheus_stores_the_trace_ids_of_sampled_requests(loaded: LoadedLab) -> None:
    data = loaded.exemplars('http_request_duration_seconds_bucket{job="api", handler="/predict"}')
    stored = {e["labels"].get("trace_id") for series in data for e in series["exemplars"]}

    assert stored & set(loaded.trace_ids)


@pytest.mark.parametrize("query", [q for q in PANEL_QUERIES if q.exemplar], ids=lambda q: q.id)
def test_exemplar_panels_get_trace_ids(loaded: LoadedLab, query: grafana.Query) -> None:
    data = loaded.exemplars(loaded.promql(query))
    trace_ids = [e["labels"].get("trace_id") for series in data for e in series["exemplars"]]

    assert trace_ids and all(trace_ids), data
