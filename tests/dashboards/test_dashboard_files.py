"""The dashboard JSON files: loadable by file provisioning, consistent, in the rules' vocabulary."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.dashboards import grafana
from tests.support import REPO

EXPECTED_UIDS = {
    "capacity-overview.json": "lab-capacity",
    "replicas.json": "lab-replicas",
    "load-generator.json": "lab-loadgen",
    "model.json": "lab-model",
}
# What each dashboard must show, in recorded (or raw) series names.
REQUIRED_SERIES = {
    "lab-capacity": {
        "config:requests:rate1m", "config:error_ratio:rate1m", "config:latency_seconds:p95",
        "config:latency_seconds:p99", "config:slo_good:ratio_rate1m", "config:replicas_up:count",
        "config:requests_within_slo:rate1m", "config:slo_met:rate1m",
        "traefik_service_retries_total",
    },
    "lab-replicas": {
        "replica:requests:rate1m", "replica:latency_seconds:p95", "replica:inflight",
        "replica:cpu_usage:ratio_limit", "replica:cpu_throttled_periods:ratio_rate1m",
        "replica:memory_usage_bytes", "replica:memory_limit_bytes", "up",
        "replica:cpu_throttled_seconds:rate1m",
    },
    "lab-loadgen": {
        "run:users:sum", "run:requests:rate1m", "config:latency_success_seconds:p50",
        "config:latency_success_seconds:p95", "config:latency_success_seconds:p99",
        "config:latency_seconds:p50", "config:latency_seconds:p95", "config:latency_seconds:p99",
        "run:failures:rate1m", "run:generator_cpu_percent:max", "locust_offered_rate",
        "locust_arrivals_total",
    },
    "lab-model": {
        "model_inference_seconds_bucket", "config:model_batch_size:mean1m",
        "config:model_predictions:rate1m", "model_info", "config:latency_overflow:rate1m",
    },
}  # fmt: skip
RANGE_SELECTOR = re.compile(r"\[([^\]]*)\]")
RECORDED_NAME = re.compile(r"\b[a-z_]+(?::[a-z0-9_]+)+\b")
SERIES_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")

DASHBOARDS = {path.name: grafana.load_dashboard(path) for path in grafana.DASHBOARD_FILES}
BY_UID = {dashboard["uid"]: dashboard for dashboard in DASHBOARDS.values()}
PANEL_QUERIES = [q for d in DASHBOARDS.values() for q in grafana.panel_queries(d)]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in (REPO / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def visible_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in grafana.panels(dashboard) if panel["type"] != "row"]


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [query.expr for query in grafana.panel_queries(dashboard)]


def test_the_four_dashboards_have_their_fixed_uids() -> None:
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]

    assert {name: d["uid"] for name, d in DASHBOARDS.items()} == EXPECTED_UIDS
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_self_contained_for_file_provisioning(name: str) -> None:
    text = (grafana.DASHBOARD_DIR / name).read_text()
    dashboard = DASHBOARDS[name]

    assert "__inputs" not in dashboard
    assert "${DS_" not in text
    assert "[[" not in text, "deprecated [[variable]] syntax"
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["id"] is None
    assert dashboard["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_are_unique_and_panels_fit_the_grid(name: str) -> None:
    dashboard = DASHBOARDS[name]
    ids = Counter(panel["id"] for panel in grafana.panels(dashboard))

    assert [panel_id for panel_id, count in ids.items() if count > 1] == []
    for panel in grafana.panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_datasources_are_provisioned_uids_with_their_type(name: str) -> None:
    provisioned = grafana.provisioned_datasources()
    refs = list(grafana.datasource_refs(DASHBOARDS[name]))

    assert refs
    for ref in refs:
        assert isinstance(ref, dict), f"datasource by name instead of uid: {ref!r}"
        assert ref["uid"] in provisioned, ref
        assert ref["type"] == provisioned[ref["uid"]], ref


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_variables_config_run_id_and_replica_query_real_series(name: str) -> None:
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}

    assert set(grafana.VARIABLES) <= set(variables)
    for variable_name in grafana.VARIABLES:
        variable = variables[variable_name]
        selector, label = grafana.parse_label_values(grafana.variable_query(variable))
        assert label == variable_name
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert variable["includeAll"] and variable["multi"]
        assert "allValue" not in variable, "All must expand to the real values, not .*"
        assert SERIES_NAME.match(selector), selector


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_visible_panel_explains_how_to_read_it(name: str) -> None:
    for panel in visible_panels(DASHBOARDS[name]):
        assert len(panel.get("description", "")) >= 60, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=lambda q: q.id)
def test_ranges_come_from_grafana_never_hard_coded(query: grafana.Query) -> None:
    windows = RANGE_SELECTOR.findall(query.expr)

    assert set(windows) <= {"$__rate_interval", "$__range", "$__interval"}, query.expr
    if re.search(r"\b(rate|irate)\(", query.expr):
        assert "$__rate_interval" in windows, query.expr


def test_heatmaps_count_each_step_once() -> None:
    heatmaps = [p for d in DASHBOARDS.values() for p in visible_panels(d) if p["type"] == "heatmap"]
    datasources = yaml.safe_load(grafana.DATASOURCES_FILE.read_text())["datasources"]
    [prometheus] = [source for source in datasources if source["uid"] == "prometheus"]
    scrape = int(prometheus["jsonData"]["timeInterval"].removesuffix("s"))

    assert heatmaps
    for panel in heatmaps:
        for target in panel["targets"]:
            # $__interval is the step between cells: windows side by side, never overlapping
            # ($__rate_interval is several steps wide, so each call would count in several).
            assert RANGE_SELECTOR.findall(target["expr"]) == ["$__interval"], target["expr"]
        # Two scrapes at least in each window, or increase() has nothing to compare.
        assert int(panel["interval"].removesuffix("s")) >= 2 * scrape, panel["title"]


def test_panels_use_only_recorded_names_that_exist() -> None:
    known = recorded_names()
    used = {name for query in PANEL_QUERIES for name in RECORDED_NAME.findall(query.expr)}

    assert used, "the dashboards should read the recording rules"
    assert used - known == set()


@pytest.mark.parametrize("uid", sorted(REQUIRED_SERIES))
def test_dashboard_shows_what_the_issue_asks_for(uid: str) -> None:
    names = {name for expr in exprs(BY_UID[uid]) for name in SERIES_NAME.findall(expr)}

    assert REQUIRED_SERIES[uid] - names == set()


def test_capacity_overview_draws_the_slo_lines_and_run_annotations() -> None:
    dashboard = BY_UID["lab-capacity"]
    lines = {
        (panel["fieldConfig"]["defaults"]["unit"], step["value"])
        for panel in visible_panels(dashboard)
        if panel["type"] == "timeseries"
        and panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    }
    annotations = dashboard["annotations"]["list"]

    assert ("percentunit", 0.01) in lines
    assert ("s", 1) in lines
    assert any(
        a.get("useValueForTime") and "locust_run_start_time_seconds" in a["expr"]
        for a in annotations
    )
    assert any(panel["type"] == "stat" for panel in visible_panels(dashboard))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_run_annotations_give_one_expression_to_old_and_new_grafana(name: str) -> None:
    [annotation] = DASHBOARDS[name]["annotations"]["list"]

    # Grafana 10+ reads `target`; older versions and the title formats read the top level.
    assert annotation["target"]["expr"] == annotation["expr"]
    assert annotation["useValueForTime"] is True
    assert "locust_run_start_time_seconds" in annotation["expr"]
    assert annotation["expr"].endswith("* 1000"), "useValueForTime wants milliseconds"


def test_every_replica_panel_has_a_total_series() -> None:
    for panel in visible_panels(BY_UID["lab-replicas"]):
        legends = [target.get("legendFormat", "") for target in panel["targets"]]
        assert any(legend.startswith("Total") for legend in legends), panel["title"]


def test_model_latency_panels_ask_for_exemplars_on_raw_histograms() -> None:
    latency_panels = [
        panel
        for panel in visible_panels(BY_UID["lab-model"])
        if "latency" in panel["title"].lower() and "per replica" not in panel["title"]
    ]

    assert len(latency_panels) >= 2
    for panel in latency_panels:
        exemplar_targets = [t for t in panel["targets"] if t.get("exemplar")]
        assert exemplar_targets, panel["title"]
        # Recorded series carry no exemplars: only a query on buckets can show them.
        assert all("_bucket{" in t["expr"] for t in exemplar_targets), panel["title"]


def test_docker_only_list_names_exactly_the_cadvisor_targets() -> None:
    by_key = {query.key: query for query in PANEL_QUERIES}
    cadvisor = {q.key for q in PANEL_QUERIES if grafana.DOCKER_ONLY_SERIES.search(q.expr)}

    assert cadvisor == set(grafana.DOCKER_ONLY)
    for (uid, title, _), native_ref in grafana.DOCKER_ONLY.items():
        native = by_key[(uid, title, native_ref)]
        assert not grafana.DOCKER_ONLY_SERIES.search(native.expr)


def test_slo_latency_panels_show_exemplars() -> None:
    dashboard = BY_UID["lab-capacity"]
    slo_latency = [
        panel
        for panel in visible_panels(dashboard)
        if panel["type"] == "timeseries"
        and any("config:latency_seconds:p95" in t["expr"] for t in panel["targets"])
    ]

    assert len(slo_latency) >= 2
    for panel in slo_latency:
        exemplar_targets = [t for t in panel["targets"] if t.get("exemplar")]
        assert exemplar_targets, panel["title"]
        assert all("_bucket{" in t["expr"] for t in exemplar_targets), panel["title"]


def test_now_stats_read_this_instant_only() -> None:
    # A range query would show the last value of a config that has since gone.
    stats = [p for p in visible_panels(BY_UID["lab-capacity"]) if p["type"] == "stat"]

    assert len(stats) >= 6
    for panel in stats:
        assert all(t["instant"] and not t["range"] for t in panel["targets"]), panel["title"]


def test_no_query_guesses_the_config_of_traefik_series() -> None:
    rules = "\n".join(path.read_text() for path in (REPO / "prometheus" / "rules").glob("*.yml"))

    assert "topk" not in rules
    assert not [q.expr for q in PANEL_QUERIES if "topk" in q.expr]
    # Edge series come from the per-config prediction routers only.
    assert 'router=~"predict-.+"' in rules
    assert 'router=~"api@' not in rules


def test_model_panels_split_by_config() -> None:
    for query in grafana.panel_queries(BY_UID["lab-model"]):
        if "histogram_quantile" in query.expr and "model_inference_seconds" in query.expr:
            assert "by (config, le)" in query.expr, query.id


def test_configs_compared_reads_rate_and_verdict_at_the_same_instants() -> None:
    [table] = [p for p in visible_panels(BY_UID["lab-capacity"]) if p["type"] == "table"]
    rates = [t["expr"] for t in table["targets"] if "requests" in t["expr"]]

    # The only rate in the table is the one recorded while the SLO held.
    assert rates == [
        'max by (config) (max_over_time(config:requests_within_slo:rate1m{layer="client", '
        'config=~"$config"}[$__range]))'
    ]
    assert "different times" in table["description"]


def test_throttled_time_is_a_share_of_wall_time() -> None:
    [panel] = [
        p
        for p in visible_panels(BY_UID["lab-replicas"])
        if any("cpu_throttled_seconds" in t["expr"] for t in p["targets"])
    ]

    assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_share_under_one_second_is_never_said_to_match_the_p95_exactly() -> None:
    for dashboard in DASHBOARDS.values():
        for panel in visible_panels(dashboard):
            text = panel["description"]
            if "under 1 s" in panel["title"] or "within the 1 s" in text:
                assert "exactly when" not in text, panel["title"]
                assert "below 95 % the P95 is above" not in text, panel["title"]
                assert "under 95 % the P95 is above" not in text, panel["title"]
