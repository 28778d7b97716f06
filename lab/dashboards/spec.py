"""What the dashboard page draws: a Grafana dashboard with its queries ready to send.

The page (static/dashboard.js) asks the server for a dashboard's spec and then reads
Prometheus' HTTP API itself. The spec keeps the panel definitions as the JSON holds them
(type, grid position, fieldConfig, options, transformations) and replaces each query by
its interpolated PromQL, with the step Grafana would use for that panel, so the page
never interpolates anything.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.dashboards import grafana

# Grafana's default when a dashboard sets no time range, and the choices the page offers.
DEFAULT_RANGE = "30m"
RANGES = ("5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h")
# The grid is 24 columns wide; a panel's share of the page width is its number of points.
GRID_COLUMNS = 24
DEFAULT_WIDTH = 1600
_DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>ms|s|m|h|d|w)?$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

# Resolves label_values(selector, label) over [start, end]: the server's Prometheus call.
LabelValues = Callable[[str, str, float, float], Awaitable[list[str]]]


class SpecError(ValueError):
    """A request the page cannot be drawn for (bad range, unknown dashboard)."""


def parse_duration(text: str) -> float:
    """`30m`, `1h`, `now-30m` (Grafana's `from`) or plain seconds -> seconds."""
    text = text.strip().removeprefix("now-")
    match = _DURATION.match(text)
    if not match or int(match["amount"]) == 0:
        raise SpecError(f"not a time range: {text!r} (use e.g. 15m, 1h, 900)")
    return int(match["amount"]) * _SECONDS[match["unit"]]


def refresh_seconds(dashboard: Mapping[str, Any]) -> float | None:
    refresh = dashboard.get("refresh")
    return parse_duration(refresh) if refresh else None


def default_range(dashboard: Mapping[str, Any]) -> str:
    start = dashboard.get("time", {}).get("from", f"now-{DEFAULT_RANGE}")
    return start.removeprefix("now-")


@dataclass(frozen=True)
class Request:
    """What the page asks for: a range ending now, variable choices, its width in pixels."""

    end: float
    range_seconds: float
    chosen: Mapping[str, Sequence[str]]
    width: int = DEFAULT_WIDTH


async def resolve_variables(
    dashboard: Mapping[str, Any], request: Request, label_values: LabelValues
) -> list[dict[str, Any]]:
    """Each query variable's options over the range, in order (a variable's selector may
    use the ones before it), and the values chosen: the request's, else All."""
    resolved: list[dict[str, Any]] = []
    values: dict[str, list[str]] = {}
    builtins = grafana.Builtins.compute(request.range_seconds, request.width, 1).as_text()
    start = request.end - request.range_seconds
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        name = variable["name"]
        selector, label = grafana.parse_label_values(grafana.variable_query(variable))
        options = await label_values(
            grafana.interpolate(selector, values, builtins), label, start, request.end
        )
        wanted = [value for value in request.chosen.get(name, []) if value in options]
        values[name] = wanted or list(options)
        resolved.append(
            {
                "name": name,
                "label": variable.get("label") or name,
                "options": list(options),
                "selected": values[name] if wanted else [],
            }
        )
    return resolved


def panel_spec(
    panel: Mapping[str, Any],
    values: Mapping[str, Sequence[str]],
    request: Request,
    scrape_interval: float,
) -> dict[str, Any]:
    """One panel as the page draws it, its queries interpolated for its own width."""
    grid = panel.get("gridPos", {"x": 0, "y": 0, "w": GRID_COLUMNS, "h": 8})
    spec: dict[str, Any] = {
        "id": panel.get("id"),
        "type": panel["type"],
        "title": panel.get("title", ""),
        "description": panel.get("description", ""),
        "gridPos": grid,
    }
    if panel["type"] == "row":
        return spec
    points = max(1, round(request.width * grid.get("w", GRID_COLUMNS) / GRID_COLUMNS))
    panel_min = min_interval(panel.get("interval"))

    def builtins(target: Mapping[str, Any]) -> grafana.Builtins:
        # A query's own min interval (Grafana's "Min step") wins over the panel's.
        wanted = min_interval(target.get("interval"))
        return grafana.Builtins.compute(
            request.range_seconds,
            points,
            scrape_interval,
            wanted if wanted is not None else panel_min,
        )

    targets = [t for t in panel.get("targets", []) if t.get("expr") and not t.get("hide")]
    spec.update(
        fieldConfig=panel.get("fieldConfig", {}),
        options=panel.get("options", {}),
        transformations=panel.get("transformations", []),
        interval=grafana.Builtins.compute(
            request.range_seconds, points, scrape_interval, panel_min
        ).interval,
        targets=[
            {
                "refId": target.get("refId", "A"),
                "expr": grafana.interpolate(target["expr"], values, builtins(target).as_text()),
                "step": builtins(target).interval,
                "legendFormat": target.get("legendFormat", ""),
                "instant": bool(target.get("instant")),
                "exemplar": bool(target.get("exemplar")),
                "format": target.get("format", "time_series"),
            }
            for target in targets
        ],
    )
    return spec


def min_interval(text: str | None) -> float | None:
    """A panel's or query's min interval (`10s`; Grafana also accepts `>10s`), if set."""
    if not text:
        return None
    return parse_duration(text.lstrip(">"))


async def dashboard_spec(
    dashboard: Mapping[str, Any],
    request: Request,
    scrape_interval: float,
    label_values: LabelValues,
) -> dict[str, Any]:
    variables = await resolve_variables(dashboard, request, label_values)
    values = {
        variable["name"]: variable["selected"] or variable["options"] for variable in variables
    }
    return {
        "uid": dashboard["uid"],
        "title": dashboard.get("title", dashboard["uid"]),
        "start": request.end - request.range_seconds,
        "end": request.end,
        "range": request.range_seconds,
        "refresh": refresh_seconds(dashboard),
        "variables": variables,
        "panels": [
            panel_spec(panel, values, request, scrape_interval)
            for panel in grafana.panels(dashboard)
        ],
    }
