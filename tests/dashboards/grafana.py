"""The provisioned Grafana files as data: dashboards, their queries, and Grafana's interpolation.

Grafana cannot run here, so the tests do what it would do with a query: substitute the
dashboard variables and the built-in intervals, then send the PromQL to Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO

GRAFANA = REPO / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
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

_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$")
# Grafana escapes these in the values of multi-value and All variables
# (prometheusSpecialRegexEscape in its Prometheus datasource).
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


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


def load_dashboard(path: Path) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path.name}: {constant} is not valid JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def dashboards() -> list[dict[str, Any]]:
    return [load_dashboard(path) for path in DASHBOARD_FILES]


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels nested in collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


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


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, Mapping) else query


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


def parse_label_values(query: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label)."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values(selector, label) query: {query}")
    return match["selector"].strip(), match["label"]


def regex_escape(value: str) -> str:
    """A value as Grafana writes it into a PromQL regex matcher (a double-quoted string)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m[0], value.replace("\\", "\\\\\\\\"))


def variable_text(values: Sequence[str]) -> str:
    """What Grafana substitutes for a multi-value variable: one value, or `(a|b|...)`."""
    escaped = [regex_escape(value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, values: Mapping[str, Sequence[str]], builtins: Mapping[str, str]) -> str:
    """Substitute `$name` and `${name}` as Grafana does before it sends a query."""
    replacements = {f"__{name}": text for name, text in builtins.items()}
    replacements.update({name: variable_text(chosen) for name, chosen in values.items()})
    for name in replacements:
        expr = expr.replace("${" + name + "}", replacements[name])
        expr = re.sub(rf"\${re.escape(name)}\b", lambda _, n=name: replacements[n], expr)
    return expr
