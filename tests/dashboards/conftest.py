"""One native stack under real load for every dashboard test that needs data.

The stack (2 replicas) gets a few traced requests, then a 40 s Locust run (2 % of the
predictions invalid, so failures by exception exist). Package-scoped: the query tests
(test_panel_queries.py) and the browser test (test_browser.py) read the same run, so the
suite pays for one stack and one load run, not two.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitoring.prom import Prometheus
from tests.dashboards import grafana
from tests.lab.runtimes.native.lab import NativeLab, running_lab
from tests.load.locust_runner import run_locust
from tests.support import PENGUIN, wait_until

RUN_ID = "dashboards"
RUN_SECONDS = 40
# What Grafana substitutes for its built-ins, for a 5 s scrape interval and a range
# that holds the whole run.
BUILTINS = {"rate_interval": "20s", "interval": "5s", "range": "5m"}


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


@pytest.fixture(scope="package")
def lab(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeLab]:
    """The dashboard tests' own stack (2 replicas, 1 CPU, 1 GB), shared by their modules."""
    with running_lab(model_dir, tmp_path_factory.mktemp("run"), 2, "1", "1g") as native:
        yield native


@pytest.fixture(scope="package")
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
