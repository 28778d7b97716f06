"""`make demo` with the Docker runtime: start the stack if needed, send a burst of real
predictions through Traefik, and show where to look."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from lab.runtimes.contract import Runtime
from lab.runtimes.demo import burst, served_per_replica
from lab.runtimes.docker.settings import GRAFANA_PORT, LOCUST_PORT, TRAEFIK_PORT, DockerSettings
from monitoring.prom import Prometheus


def demo(
    runtime: Runtime,
    settings: DockerSettings,
    count: int = 600,
    write: Callable[[str], None] = print,
) -> None:
    if runtime.current() is None:
        runtime.up(runtime.configured())
    endpoints = runtime.endpoints()
    statuses = burst(endpoints.api, count)
    ok = statuses.get(200, 0)
    others = dict(statuses - Counter({200: ok})) or "none"
    write(f"sent {count} predictions through Traefik: {ok} answered 200, others {others}")

    prometheus = Prometheus(endpoints.prometheus)
    per_replica = served_per_replica(prometheus, ok, endpoints.scrape_interval_seconds)
    write("predictions served per replica (from Prometheus):")
    for replica, value in sorted(per_replica.items()):
        write(f"  {replica}: {value:.0f}")

    url = settings.url
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
