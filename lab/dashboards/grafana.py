"""The Grafana dashboard files as data, and Grafana's query interpolation, written once.

The provisioned JSON in grafana/dashboards/ is the one source of truth for every panel:
its queries, units, thresholds and titles. The native dashboard server reads those files
on every request and the dashboard tests read them too, so the two views cannot drift.

Interpolation follows Grafana's Prometheus datasource: dashboard variables (`$config`,
`${replica}`; multi-value and All become a regex alternation of escaped values) and the
built-ins `$__interval`, `$__rate_interval`, `$__range` (with their `_ms`/`_s` forms),
computed from the time range, the panel's width in points and the scrape interval as
Grafana computes them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core import REPO

DASHBOARD_DIR = REPO / "grafana" / "dashboards"

_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*(?P<label>\w+)\s*\)\s*$")
# Grafana escapes these in the values of multi-value and All variables
# (prometheusSpecialRegexEscape in its Prometheus datasource).
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
# Grafana's roundInterval: an interval in ms is rounded down to the value of the first
# bound it is below (public/app/core/utils/rangeutil.ts, kept in @grafana/data).
_ROUNDING_MS: tuple[tuple[float, float], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)


class DashboardError(ValueError):
    """A dashboard file that cannot be read as Grafana would read it."""


def load_dashboard(path: Path) -> dict[str, Any]:
    """One dashboard file; NaN or Infinity (not JSON, though Python accepts them) refused."""

    def refuse(constant: str) -> None:
        raise DashboardError(f"{path.name}: {constant} is not valid JSON")

    try:
        return json.loads(path.read_text(), parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise DashboardError(f"{path.name}: {exc}") from None


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def dashboards(directory: Path = DASHBOARD_DIR) -> list[dict[str, Any]]:
    return [load_dashboard(path) for path in dashboard_files(directory)]


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels nested in collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_query(variable: Mapping[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, Mapping) else query


def parse_label_values(query: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label)."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise DashboardError(f"not a label_values(selector, label) query: {query}")
    return match["selector"].strip(), match["label"]


def regex_escape(value: str) -> str:
    """A value as Grafana writes it into a PromQL regex matcher (a double-quoted string)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m[0], value.replace("\\", "\\\\\\\\"))


def variable_text(values: Sequence[str]) -> str:
    """What Grafana substitutes for a multi-value variable: one value, or `(a|b|...)`.
    A variable whose query found nothing is empty, as Grafana leaves it."""
    escaped = [regex_escape(value) for value in values]
    if not escaped:
        return ""
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, values: Mapping[str, Sequence[str]], builtins: Mapping[str, str]) -> str:
    """Substitute `$name` and `${name}` as Grafana does before it sends a query.

    `builtins` are named without their `__` (`{"rate_interval": "20s"}`); `values` are
    the chosen values of each dashboard variable."""
    replacements = {f"__{name}": text for name, text in builtins.items()}
    replacements.update({name: variable_text(chosen) for name, chosen in values.items()})
    # Longest names first, so that `$__range_s` is never read as `$__range` + `_s`.
    for name in sorted(replacements, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", replacements[name])
        expr = re.sub(rf"\${re.escape(name)}\b", lambda _, n=name: replacements[n], expr)
    return expr


def round_interval(seconds: float) -> float:
    """Grafana's rounding of a computed interval to a readable one (in seconds)."""
    ms = seconds * 1000
    for bound, rounded in _ROUNDING_MS:
        if ms < bound:
            return rounded / 1000
    return 31_536_000.0


def duration(seconds: float) -> str:
    """A PromQL duration: whole seconds when possible, else milliseconds."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class Builtins:
    """Grafana's built-in variables for one panel: the query step is `interval`."""

    interval: float
    rate_interval: float
    range: float

    @classmethod
    def compute(
        cls,
        range_seconds: float,
        points: int,
        scrape_interval: float,
        min_interval: float | None = None,
    ) -> Builtins:
        """As Grafana does for a panel `points` pixels wide showing `range_seconds`: the
        lower limit is the panel's or query's min interval when it sets one, else the
        datasource's scrape interval (its `timeInterval`); `$__rate_interval` is
        max(interval + scrape interval, 4 x scrape interval)."""
        low = scrape_interval if min_interval is None else min_interval
        interval = max(round_interval(range_seconds / max(points, 1)), low)
        rate_interval = max(interval + scrape_interval, 4 * scrape_interval)
        return cls(interval=interval, rate_interval=rate_interval, range=range_seconds)

    def as_text(self) -> dict[str, str]:
        whole_range = max(1, math.ceil(self.range))
        return {
            "interval": duration(self.interval),
            "interval_ms": str(round(self.interval * 1000)),
            "rate_interval": duration(self.rate_interval),
            "range": f"{whole_range}s",
            "range_s": str(whole_range),
            "range_ms": str(whole_range * 1000),
        }
