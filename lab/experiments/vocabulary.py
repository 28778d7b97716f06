"""The recording rules as the report's query language.

The report measures the same things the dashboards show, with the same PromQL: each
query here is a recording rule's expression (prometheus/rules/*.yml) with its 1-minute
window replaced by the measured window, and, for the client layer, narrowed to one
Locust run. Nothing is written twice.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from lab.core import REPO

RULES_DIR = REPO / "prometheus" / "rules"
RULE_WINDOW = "[1m]"


@lru_cache(maxsize=4)
def _rules(directory: Path) -> dict[tuple[str, str | None], str]:
    rules: dict[tuple[str, str | None], str] = {}
    for path in sorted(directory.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    layer = (rule.get("labels") or {}).get("layer")
                    rules[(rule["record"], layer)] = " ".join(rule["expr"].split())
    return rules


def expression(record: str, layer: str | None = None, directory: Path = RULES_DIR) -> str:
    try:
        return _rules(directory)[(record, layer)]
    except KeyError:
        where = f" for layer {layer}" if layer else ""
        raise KeyError(f"no recording rule {record}{where} in {directory}") from None


def range_of(seconds: float) -> str:
    """A PromQL range of whole seconds: 42.4 -> "42s"."""
    return f"{max(1, round(seconds))}s"


def _inlined(text: str, directory: Path = RULES_DIR) -> str:
    """`text` with every recorded series it reads (a rule without a layer, such as the
    edge's per-config router rates) replaced by that rule's own expression, so that its
    window can be replaced too. A reference's matchers (`name{code=~"5.."}`) go into the
    inner rule's selector: the labels they match pass through it unchanged."""
    inner = {name: expr for (name, layer), expr in _rules(directory).items() if layer is None}
    for name, expr in inner.items():
        if RULE_WINDOW not in expr:
            continue
        pattern = re.compile(re.escape(name) + r"(\{[^}]*\})?(?![\w:])")

        def inline(match: re.Match[str], expr: str = expr) -> str:
            matchers = (match.group(1) or "{}")[1:-1].strip()
            if matchers:
                expr = re.sub(
                    r"\{([^}]*)\}",
                    lambda m: "{" + m.group(1) + ", " + matchers + "}",
                    expr,
                    count=1,
                )
            return f"({expr})"

        text = pattern.sub(inline, text)
    return text


def windowed(
    record: str, window_s: float, layer: str | None = None, run_id: str | None = None
) -> str:
    """`record`'s expression over the last `window_s` seconds (one Locust run's only)."""
    text = _inlined(expression(record, layer))
    if RULE_WINDOW not in text:
        raise ValueError(f"{record} has no {RULE_WINDOW} window to replace")
    text = text.replace(RULE_WINDOW, f"[{range_of(window_s)}]")
    if run_id is not None:
        text = text.replace('job="locust"', f'job="locust", run_id="{run_id}"')
    return text


def instant(record: str, layer: str | None = None) -> str:
    """A rule without a window (gauges such as limits), as it is."""
    return expression(record, layer)
