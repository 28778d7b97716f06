"""The native dashboard server without a stack: Grafana's interpolation, the page's spec
built from every panel the JSON holds, the Prometheus forwarding and the trace view, with
a stand-in Prometheus (httpx.MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from lab.dashboards import grafana, spec
from lab.dashboards.server import ServerConfig, create_app

LABELS = {"config": ["r2-c1.0-m1g"], "run_id": ["run-1"], "replica": ["replica-1", "replica-2"]}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def fake_prometheus(seen: list[httpx.Request]) -> httpx.MockTransport:
    """Label values for the variables, an empty answer to every query."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path.startswith("/api/v1/label/"):
            label = path.split("/")[4]
            return httpx.Response(200, json={"status": "success", "data": LABELS.get(label, [])})
        if path == "/api/v1/query":
            data = {"resultType": "vector", "result": []}
            return httpx.Response(200, json={"status": "success", "data": data})
        return httpx.Response(404, json={"status": "error", "error": "not here"})

    return httpx.MockTransport(answer)


def refused(_: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(tmp_path: Path, seen: list[httpx.Request]) -> TestClient:
    config = ServerConfig(
        prometheus="http://prometheus.test", scrape_interval=2, trace_dir=tmp_path / "traces"
    )
    return TestClient(create_app(config, fake_prometheus(seen)))


def test_builtins_follow_grafana_for_range_width_and_scrape_interval() -> None:
    # 1 h over 1000 points is 3.6 s, which Grafana rounds to 5 s; the rate window is
    # then max(5 + 5, 4 x 5) s.
    wide = grafana.Builtins.compute(3600, 1000, 5).as_text()
    # 30 min over 1600 points is ~1.1 s, rounded to 1 s, raised to the 2 s scrape interval.
    native = grafana.Builtins.compute(1800, 1600, 2)

    assert wide["interval"] == "5s"
    assert wide["rate_interval"] == "20s"
    assert wide["range"] == "3600s"
    assert wide["range_s"] == "3600"
    assert native.interval == 2
    assert native.rate_interval == 8


def test_interpolation_keeps_range_and_range_s_apart_and_escapes_values() -> None:
    builtins = {"range": "300s", "range_s": "300", "rate_interval": "8s"}
    expr = 'x{config=~"$config"}[$__range] / $__range_s + rate(y[${__rate_interval}])'

    text = grafana.interpolate(expr, {"config": ["r2-c1.0-m1g", "r1-c0.5-m512m"]}, builtins)

    assert text == ('x{config=~"(r2-c1\\\\.0-m1g|r1-c0\\\\.5-m512m)"}[300s] / 300 + rate(y[8s])')


def test_a_variable_without_values_is_empty_as_in_grafana() -> None:
    assert grafana.interpolate('x{run_id=~"$run_id"}', {"run_id": []}, {}) == 'x{run_id=~""}'


@pytest.mark.parametrize("duration", ["0", "5x", "-5m", ""])
def test_a_bad_time_range_is_refused(duration: str) -> None:
    with pytest.raises(spec.SpecError):
        spec.parse_duration(duration)


@pytest.mark.parametrize("dashboard", grafana.dashboards(), ids=lambda d: d["uid"])
def test_spec_holds_every_panel_of_the_json_with_its_queries_interpolated(
    client: TestClient, dashboard: dict[str, Any]
) -> None:
    response = client.get(f"/api/dashboards/{dashboard['uid']}", params={"range": "15m"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["title"] for p in body["panels"]] == [
        p.get("title", "") for p in grafana.panels(dashboard)
    ]
    assert body["end"] - body["start"] == 900
    for panel, source in zip(body["panels"], grafana.panels(dashboard), strict=True):
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"] == source.get("fieldConfig", {})
        assert len(panel["targets"]) == len([t for t in source["targets"] if not t.get("hide")])
        for target in panel["targets"]:
            assert "$" not in target["expr"], target["expr"]
        assert panel["interval"] >= 2


def test_a_chosen_variable_value_narrows_every_query(client: TestClient) -> None:
    response = client.get("/api/dashboards/lab-replicas", params={"var-replica": "replica-2"})

    exprs = [t["expr"] for p in response.json()["panels"] for t in p.get("targets", [])]
    assert any('replica=~"replica-2"' in expr for expr in exprs)
    assert not any("replica-1" in expr for expr in exprs)


def test_pages_answer_and_unknown_dashboards_are_404(client: TestClient) -> None:
    index = client.get("/")
    page = client.get("/d/lab-capacity")

    assert index.status_code == 200
    for dashboard in grafana.dashboards():
        assert f'href="/d/{dashboard["uid"]}"' in index.text
    assert page.status_code == 200
    assert 'data-uid="lab-capacity"' in page.text
    assert client.get("/d/nope").status_code == 404
    assert client.get("/api/dashboards/nope").status_code == 404
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200
    assert client.get("/-/ready").status_code == 200


def test_prometheus_read_api_is_forwarded_and_its_admin_api_is_not(
    client: TestClient, seen: list[httpx.Request]
) -> None:
    query = client.post("/api/v1/query", data={"query": "up"})
    admin = client.post("/api/v1/admin/tsdb/delete_series", params={"match[]": "up"})

    assert query.status_code == 200
    assert query.json()["status"] == "success"
    assert seen[-1].url.path == "/api/v1/query"
    assert b"query=up" in seen[-1].content
    assert admin.status_code == 403
    assert all("admin" not in r.url.path for r in seen)


def test_prometheus_down_is_one_clear_error(tmp_path: Path) -> None:
    config = ServerConfig(
        prometheus="http://prometheus.test", scrape_interval=2, trace_dir=tmp_path
    )
    client = TestClient(create_app(config, httpx.MockTransport(refused)))

    spec_answer = client.get("/api/dashboards/lab-capacity")
    forwarded = client.get("/api/v1/query", params={"query": "up"})

    assert spec_answer.status_code == 502
    assert "Prometheus at http://prometheus.test does not answer" in spec_answer.json()["error"]
    assert forwarded.status_code == 502
    assert "does not answer" in forwarded.json()["error"]


def test_a_bad_range_is_a_400(client: TestClient) -> None:
    response = client.get("/api/dashboards/lab-capacity", params={"range": "soon"})

    assert response.status_code == 400
    assert "not a time range" in response.json()["error"]


def test_trace_view_without_trace_files_says_so(client: TestClient) -> None:
    missing = client.get(f"/trace/{TRACE_ID}")
    malformed = client.get("/trace/not-a-trace")

    assert missing.status_code == 404
    assert "trace files not found" in missing.text
    assert malformed.status_code == 400


def test_trace_view_draws_the_stored_span_tree(tmp_path: Path, seen: list[httpx.Request]) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    span = {
        "trace_id": TRACE_ID,
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": None,
        "name": "POST /predict",
        "kind": "SERVER",
        "start_time_unix_nano": 1_000_000_000,
        "end_time_unix_nano": 1_012_000_000,
        "status": "OK",
        "attributes": {"http.response.status_code": 200},
        "resource": {"service.name": "penguin-api", "service.instance.id": "replica-1"},
    }
    (traces / "replica-1.jsonl").write_text(json.dumps(span) + "\n")
    config = ServerConfig(prometheus="http://prometheus.test", scrape_interval=2, trace_dir=traces)
    client = TestClient(create_app(config, fake_prometheus(seen)))

    found = client.get(f"/trace/{TRACE_ID}")
    other = client.get(f"/trace/{'0' * 31}1")

    assert found.status_code == 200, found.text
    assert "POST /predict" in found.text
    assert 'data-state="found"' in found.text
    assert other.status_code == 404
    assert "is not in the trace files" in other.text


def test_a_panel_min_interval_raises_the_step_and_interval() -> None:
    panel = {
        "type": "heatmap",
        "title": "h",
        "interval": "10s",
        "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
        "targets": [{"refId": "A", "expr": "increase(x[$__interval])"}],
    }
    request = spec.Request(end=1000.0, range_seconds=300, chosen={}, width=1600)

    drawn = spec.panel_spec(panel, {}, request, scrape_interval=1)

    assert drawn["targets"][0]["expr"] == "increase(x[10s])"
    assert drawn["targets"][0]["step"] == 10
    assert drawn["interval"] == 10
