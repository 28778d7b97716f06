"""One latency bucket set for app, Traefik and Locust."""

from __future__ import annotations

import yaml

from api.buckets import LATENCY_BUCKETS, SLO_LATENCY_SECONDS
from tests.support import REPO


def test_bucket_set_reaches_60s_with_a_bound_at_the_slo() -> None:
    assert tuple(sorted(LATENCY_BUCKETS)) == LATENCY_BUCKETS
    assert LATENCY_BUCKETS[-1] == 60.0
    assert SLO_LATENCY_SECONDS in LATENCY_BUCKETS


def test_traefik_uses_the_project_buckets() -> None:
    static = yaml.safe_load((REPO / "traefik" / "traefik.yml").read_text())

    assert tuple(static["metrics"]["prometheus"]["buckets"]) == LATENCY_BUCKETS
