"""One SLO everywhere: lab/slo.py's numbers in the rules, the alerts, the dashboards'
threshold lines and the Locust gate, and one meaning of P95 (all requests) in each."""

from __future__ import annotations

import configparser
import importlib.util
import re
from types import ModuleType
from typing import Any

import pytest
import yaml

from api.buckets import LATENCY_BUCKETS, SLO_LATENCY_SECONDS
from lab import slo
from tests.dashboards import grafana
from tests.support import REPO

RULES_DIR = REPO / "prometheus" / "rules"


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def rule(name: str) -> list[dict[str, Any]]:
    return [r for r in rules() if name in (r.get("record"), r.get("alert"))]


def objective(record: str) -> float:
    [found] = rule(record)
    match = re.fullmatch(r"vector\(([0-9.]+)\)", found["expr"].strip())
    assert match, found["expr"]
    return float(match[1])


def locust_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "locust" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_objective_series_are_lab_slo() -> None:
    assert objective("slo:error_ratio:objective") == slo.ERROR_RATIO_MAX
    assert objective("slo:latency_quantile:objective") == slo.PERCENTILE
    assert objective("slo:latency_seconds:objective") == slo.LATENCY_MAX_SECONDS


def test_the_recorded_p95_is_lab_slo_percentile_of_all_requests() -> None:
    p95 = rule("config:latency_seconds:p95")
    success = rule("config:latency_success_seconds:p95")

    assert {r["labels"]["layer"] for r in p95} == {"client", "edge", "server", "model"}
    for recorded in p95 + success:
        assert float(re.search(r"histogram_quantile\(([0-9.]+),", recorded["expr"])[1]) == (
            slo.PERCENTILE
        )
    # All requests: no result filter in the SLO's P95, only in the second view.
    assert not [r for r in p95 if "result=" in r["expr"] or "status=" in r["expr"]]
    assert all('result="success"' in r["expr"] or "status=" in r["expr"] for r in success)


def test_alerts_compare_with_the_objective_series_as_meets_does() -> None:
    [errors] = rule("ErrorRatioAboveSLO")
    [latency] = rule("P95AboveSLO")

    assert re.search(
        r"config:error_ratio:rate1m\{.*\} >= .*slo:error_ratio:objective", errors["expr"]
    )
    assert re.search(
        r"config:latency_seconds:p95\{.*\} >= .*slo:latency_seconds:objective", latency["expr"]
    )
    # `>=` fires exactly where meets() says no: the objective itself is a miss.
    assert not slo.meets(slo.ERROR_RATIO_MAX, 0.0)
    assert not slo.meets(0.0, slo.LATENCY_MAX_SECONDS)
    assert f"(SLO < {slo.ERROR_RATIO_MAX * 100:g} %)" in errors["annotations"]["summary"]
    assert f"(SLO < {slo.LATENCY_MAX_SECONDS:g} s)" in latency["annotations"]["summary"]
    assert "all requests" in latency["annotations"]["summary"]


def test_the_verdict_series_read_the_objective() -> None:
    [met] = rule("config:slo_met:rate1m")

    assert "slo:error_ratio:objective" in met["expr"]
    assert "slo:latency_seconds:objective" in met["expr"]
    assert "config:latency_seconds:p95" in met["expr"]


def test_share_under_the_bound_is_exact_at_lab_slo_latency() -> None:
    good = rule("config:slo_good:ratio_rate1m")

    assert SLO_LATENCY_SECONDS == slo.LATENCY_MAX_SECONDS
    assert slo.LATENCY_MAX_SECONDS in LATENCY_BUCKETS
    assert len(good) == 3
    for recorded in good:
        assert f'le="{slo.LATENCY_MAX_SECONDS:.1f}"' in recorded["expr"]


def slo_panels() -> list[tuple[str, dict[str, Any], str]]:
    """(dashboard uid, panel, the SLO half it shows) for every panel drawing one."""
    found = []
    for dashboard in grafana.dashboards():
        for panel in grafana.panels(dashboard):
            exprs = " ".join(t["expr"] for t in panel.get("targets", []))
            if panel["type"] not in {"timeseries", "stat"}:
                continue
            if re.search(r"config:error_ratio:rate1m", exprs):
                found.append((dashboard["uid"], panel, "errors"))
            elif re.search(r"config:latency_seconds:p95|latency_success_seconds:p95", exprs):
                found.append((dashboard["uid"], panel, "latency"))
    return found


@pytest.mark.parametrize(
    ("uid", "panel", "half"), slo_panels(), ids=lambda v: v["title"] if isinstance(v, dict) else v
)
def test_dashboard_threshold_is_lab_slo(uid: str, panel: dict[str, Any], half: str) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    steps = [step["value"] for step in defaults["thresholds"]["steps"]]
    expected = slo.ERROR_RATIO_MAX if half == "errors" else slo.LATENCY_MAX_SECONDS

    assert defaults["unit"] == ("percentunit" if half == "errors" else "s")
    assert expected in steps, f"{uid} / {panel['title']}: {steps}"
    if panel["type"] == "timeseries":
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line", panel["title"]


def test_dashboards_draw_the_slo_on_enough_panels() -> None:
    halves = [half for _, _, half in slo_panels()]

    assert halves.count("errors") >= 4
    assert halves.count("latency") >= 6


def test_configs_compared_colours_at_lab_slo() -> None:
    [dashboard] = [d for d in grafana.dashboards() if d["uid"] == "lab-capacity"]
    [table] = [p for p in grafana.panels(dashboard) if p["type"] == "table"]
    colours = {
        override["matcher"]["options"]: [
            step["value"]
            for prop in override["properties"]
            if prop["id"] == "thresholds"
            for step in prop["value"]["steps"]
        ]
        for override in table["fieldConfig"]["overrides"]
    }

    assert slo.ERROR_RATIO_MAX in colours["Worst error %"]
    assert slo.LATENCY_MAX_SECONDS in colours["Worst P95"]


def test_locust_gate_defaults_are_lab_slo() -> None:
    conf = configparser.ConfigParser()
    conf.read_string("[locust]\n" + (REPO / "locust" / "locust.conf").read_text())
    options = (REPO / "locust" / "lab_options.py").read_text()

    assert float(conf["locust"]["check-fail-ratio"]) == slo.ERROR_RATIO_MAX
    assert float(conf["locust"]["check-p95"]) == slo.LATENCY_MAX_SECONDS
    assert "default=slo.LATENCY_MAX_SECONDS" in options
    # The Locust image has the module the options import.
    assert "lab/slo.py" in (REPO / "locust" / "Dockerfile").read_text()


def test_locust_gate_p95_counts_failures_unless_asked_for_successes() -> None:
    tally = locust_module("lab_tally").LatencyTally()
    for _ in range(90):
        tally.add(0.004, ok=True)
    # Ten timeouts: they are the P95 of all requests, not of the successes.
    for _ in range(10):
        tally.add(45.0, ok=False)

    assert tally.quantile(slo.PERCENTILE) > slo.LATENCY_MAX_SECONDS
    assert tally.quantile(slo.PERCENTILE, success_only=True) < 0.005
    assert tally.count() == 100
    assert tally.count(success_only=True) == 90
