"""`make demo` with the Docker runtime: start the stack if needed, send a burst of real
predictions through Traefik, and show where to look."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from monitoring.docker_runtime.runtime import DockerRuntime
from monitoring.docker_runtime.settings import GRAFANA_PORT, LOCUST_PORT, TRAEFIK_PORT
from monitoring.native.demo import burst
from monitoring.prom import Prometheus

SERVED = 'sum by (replica) (http_requests_total{job="api", handler="/predict"})'


def demo(runtime: DockerRuntime, count: int = 600, write: Callable[[str], None] = print) -> None:
    if runtime.current() is None:
        runtime.up(runtime.settings.deployment())
    endpoints = runtime.endpoints()
    statuses = burst(endpoints.api, count)
    ok = statuses.get(200, 0)
    others = dict(statuses - Counter({200: ok})) or "none"
    write(f"sent {count} predictions through Traefik: {ok} answered 200, others {others}")

    prometheus = Prometheus(endpoints.prometheus)
    # Counters reach Prometheus at the next scrape of each replica.
    deadline = time.monotonic() + 3 * endpoints.scrape_interval_seconds + 5
    per_replica: dict[str, float] = {}
    while time.monotonic() < deadline:
        per_replica = {s.labels.get("replica", "?"): s.value for s in prometheus.query(SERVED)}
        if sum(per_replica.values()) >= ok:
            break
        time.sleep(1)
    write("predictions served per replica (from Prometheus):")
    for replica, value in sorted(per_replica.items()):
        write(f"  {replica}: {value:.0f}")

    url = runtime.settings.url
    write(
        f"""
Where to look
  API (through Traefik)  {endpoints.api}/predict    docs {endpoints.api}/docs
  Traefik dashboard      {url(TRAEFIK_PORT)}/dashboard/
  Prometheus             {endpoints.prometheus}   targets {endpoints.prometheus}/targets
  Pushgateway            {endpoints.pushgateway}
  Grafana                {url(GRAFANA_PORT)}   user admin, the password from .env
  Locust                 make load WORKERS=4, then {url(LOCUST_PORT)}
  Stack state            make status      logs: make logs
  Change it              make scale REPLICAS=4 [CPUS=0.5] [MEMORY=512m]
  Stop everything        make down"""
    )
