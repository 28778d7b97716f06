"""Every dashboard query, interpolated as Grafana would, returns real data from a real run.

The run is the package's loaded stack (conftest.py). Locust's series leave the Pushgateway
when the run ends, so every query is evaluated at an instant inside the run.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from tests.dashboards import grafana
from tests.dashboards.conftest import RUN_ID, LoadedLab, resolve_variables
from tests.support import REPO

pytestmark = pytest.mark.slow

QUERIES = grafana.all_queries()
PANEL_QUERIES = [query for query in QUERIES if query.kind == "panel"]
BY_KEY = {query.key: query for query in PANEL_QUERIES}


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
