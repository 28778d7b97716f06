"""The service level objective, defined once.

A deployment meets the SLO over a window when fewer than 1 % of its prediction requests
fail and the 95th percentile of *all* its prediction requests (successes and failures
alike) is under 1 s. The same two numbers are written into the recording and alert rules
(prometheus/rules/slo.yml, checked against this file by tests/static), the dashboards'
threshold lines, the Locust gate's defaults and the experiments' judge. Where a second
view helps (P95 of successful requests only), it is named as such everywhere and never
decides a verdict. Standard library only: the Locust image copies this file.
"""

from __future__ import annotations

# A window meets the SLO when its error ratio is below this share ...
ERROR_RATIO_MAX = 0.01
# ... and this percentile of all prediction requests ...
PERCENTILE = 0.95
# ... is below this many seconds.
LATENCY_MAX_SECONDS = 1.0


def meets(error_ratio: float, p95_seconds: float) -> bool:
    """True when one window's error ratio and P95 (all requests) are within the SLO."""
    return error_ratio < ERROR_RATIO_MAX and p95_seconds < LATENCY_MAX_SECONDS


def describe() -> str:
    """The SLO in words, as reports and summaries print it."""
    return (
        f"< {ERROR_RATIO_MAX:.0%} errors and P{PERCENTILE * 100:.0f} of all prediction "
        f"requests < {LATENCY_MAX_SECONDS:g} s"
    )
