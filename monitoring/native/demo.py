"""`make demo`: start the stack if needed, send a burst of real predictions through
Traefik, and show where to look."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import Progress

from monitoring.native.settings import NativeSettings
from monitoring.native.stack import NativeStack
from monitoring.penguins import sample
from monitoring.prom import Prometheus

PER_REPLICA_RPS = (
    'sum by (replica) (rate(http_requests_total{job="api", handler=~"/predict.*"}[1m]))'
)


def burst(url: str, count: int, concurrency: int = 16) -> Counter[int]:
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


def demo(settings: NativeSettings, count: int = 600) -> None:
    console = Console(soft_wrap=True)
    stack = NativeStack(settings, Console(stderr=True))
    state = stack.state()
    if state is None or not all(proc.alive() for _, proc in state.all_procs()):
        console.print(f"starting the native stack ({settings.deployment().label})")
        state = stack.up()
    s = settings
    api = s.url(s.web_port)
    statuses = burst(api, count)
    ok = statuses.get(200, 0)
    others = dict(statuses - Counter({200: ok})) or "none"
    console.print(f"sent {count} predictions through Traefik: {ok} answered 200, others {others}")

    prometheus = Prometheus(s.url(s.prometheus_port))
    query = 'sum by (replica) (http_requests_total{job="api", handler="/predict"})'
    with console.status("waiting for Prometheus to scrape the replicas"):
        deadline = time.monotonic() + 3 * s.scrape_interval_seconds + 5
        per_replica = {}
        while time.monotonic() < deadline:
            per_replica = {x.labels.get("replica", "?"): x.value for x in prometheus.query(query)}
            if sum(per_replica.values()) >= ok:
                break
            time.sleep(1)
    console.print("predictions served per replica (from Prometheus):")
    for replica, value in sorted(per_replica.items()):
        console.print(f"  {replica}: {value:.0f}")

    graph = (
        f"{prometheus.page('graph')}?g0.expr={quote(PER_REPLICA_RPS)}&g0.tab=0&g0.range_input=15m"
    )
    console.print(
        f"""
[bold]Where to look[/bold]
  API (through Traefik)  {api}/    POST {api}/predict    docs {api}/docs
  Traefik dashboard      {s.url(s.traefik_port)}/dashboard/
  Prometheus             {s.url(s.prometheus_port)}   targets {prometheus.page("targets")}
  Pushgateway            {s.url(s.pushgateway_port)}
  Per-replica RPS        {PER_REPLICA_RPS}
                         {graph}
  Stack state            make status      logs in {stack.files.logs}/
  More load              make load (Locust UI on :8089), make scale REPLICAS=4
  Stop everything        make down
""",
        highlight=False,
    )
