"""What `make demo` does in every runtime: a burst of real predictions through Traefik,
then the per-replica counts Prometheus scraped."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from rich.progress import Progress

from lab.penguins import sample
from monitoring.prom import Prometheus

SERVED = 'sum by (replica) (http_requests_total{job="api", handler="/predict"})'


def burst(url: str, count: int, concurrency: int = 16) -> Counter[int]:
    """POST `count` real penguins to `url`/predict; how many got each status (0: no answer)."""
    rng = random.Random(7)
    bodies = [sample(rng) for _ in range(count)]
    statuses: Counter[int] = Counter()
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:

        def send(body: dict) -> int:
            try:
                return client.post(f"{url}/predict", json=body).status_code
            except httpx.HTTPError:
                return 0

        with Progress(transient=True) as progress, ThreadPoolExecutor(concurrency) as pool:
            task = progress.add_task("predictions through Traefik", total=count)
            for status in pool.map(send, bodies):
                statuses[status] += 1
                progress.advance(task)
    return statuses


def served_per_replica(
    prometheus: Prometheus, answered: int, scrape_interval_seconds: float
) -> dict[str, float]:
    """Predictions served per replica, once Prometheus scraped at least `answered` of them
    (counters reach it at each replica's next scrape), or what it has after the wait."""
    deadline = time.monotonic() + 3 * scrape_interval_seconds + 5
    per_replica: dict[str, float] = {}
    while time.monotonic() < deadline:
        per_replica = {s.labels.get("replica", "?"): s.value for s in prometheus.query(SERVED)}
        if sum(per_replica.values()) >= answered:
            break
        time.sleep(1)
    return per_replica
