"""The provisioned Grafana files as data, for the tests: dashboards, their queries, and
Grafana's interpolation.

Grafana cannot run here, so the tests do what it would do with a query: substitute the
dashboard variables and the built-in intervals, then send the PromQL to Prometheus. The
file reading and the interpolation are the native dashboard server's own
(lab/dashboards/grafana.py), so the tests check exactly what the native page sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from lab.dashboards.grafana import (
    DASHBOARD_DIR,
    interpolate,
    load_dashboard,
    panels,
    parse_label_values,
    regex_escape,
    variable_query,
    variable_text,
)

__all__ = [
    "DASHBOARD_DIR",
    "interpolate",
    "load_dashboard",
    "panels",
    "parse_label_values",
    "regex_escape",
    "variable_query",
    "variable_text",
]

GRAFANA = DASHBOARD_DIR.parent
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS_FILE = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))
VARIABLES = ("config", "run_id", "replica")

# Targets whose series only exist in the Docker runtime (cAdvisor), mapped to the target of
# the same panel that shows the same thing natively and must have data there:
# (dashboard uid, panel title, refId of the Docker-only target) -> refId of the native one.
DOCKER_ONLY: dict[tuple[str, str, str], str] = {
    ("lab-replicas", "OOM kills in the time range", "B"): "A",
}
DOCKER_ONLY_SERIES = re.compile(r'\bcontainer_[a-z_]+|job="cadvisor"')
# Series a replica exports only when a cgroup enforces its limits (root on Linux).
CGROUP_ONLY_SERIES = re.compile(r"replica_cpu_cfs_|replica_oom_kills|replica:cpu_throttled")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a dashboard: a panel target, a variable or an annotation."""

    dashboard: str
    kind: str
    title: str
    ref_id: str
    expr: str
    instant: bool = False
    exemplar: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dashboard, self.title, self.ref_id)

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.kind}/{self.title}/{self.ref_id}"


def dashboards() -> list[dict[str, Any]]:
    return [load_dashboard(path) for path in DASHBOARD_FILES]


def panel_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    uid = dashboard["uid"]
    return [
        Query(
            dashboard=uid,
            kind="panel",
            title=panel["title"],
            ref_id=target["refId"],
            expr=target["expr"],
            instant=bool(target.get("instant")),
            exemplar=bool(target.get("exemplar")),
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variable_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    return [
        Query(dashboard["uid"], "variable", variable["name"], "var", variable_query(variable))
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]


def annotation_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    found = []
    for annotation in dashboard.get("annotations", {}).get("list", []):
        expr = annotation.get("expr") or annotation.get("target", {}).get("expr")
        if expr:
            found.append(Query(dashboard["uid"], "annotation", annotation["name"], "anno", expr))
    return found


def all_queries() -> list[Query]:
    return [
        query
        for dashboard in dashboards()
        for query in (
            panel_queries(dashboard) + variable_queries(dashboard) + annotation_queries(dashboard)
        )
    ]


def datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a `datasource` key, at any depth."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def provisioned_datasources() -> dict[str, str]:
    """UID -> type of every provisioned datasource."""
    config = yaml.safe_load(DATASOURCES_FILE.read_text())
    return {source["uid"]: source["type"] for source in config["datasources"]}
