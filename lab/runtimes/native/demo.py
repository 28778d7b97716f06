"""`make demo`: start the stack if needed, send a burst of real predictions through
Traefik, and show where to look."""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

from rich.console import Console

from lab.dashboards.grafana import DASHBOARD_DIR, load_dashboard
from lab.runtimes.demo import burst, served_per_replica
from lab.runtimes.native.stack import NativeStack
from monitoring.prom import Prometheus

PER_REPLICA_RPS = (
    'sum by (replica) (rate(http_requests_total{job="api", handler=~"/predict.*"}[1m]))'
)


def demo(stack: NativeStack, count: int = 600) -> None:
    console = Console(soft_wrap=True)
    state = stack.state()
    s = stack.settings
    if state is None or not all(proc.alive() for _, proc in state.all_procs()):
        console.print(f"starting the native stack ({s.deployment().label})")
        state = stack.up()
    api = s.url(s.web_port)
    statuses = burst(api, count)
    ok = statuses.get(200, 0)
    others = dict(statuses - Counter({200: ok})) or "none"
    console.print(f"sent {count} predictions through Traefik: {ok} answered 200, others {others}")

    prometheus = Prometheus(s.url(s.prometheus_port))
    with console.status("waiting for Prometheus to scrape the replicas"):
        per_replica = served_per_replica(prometheus, ok, s.scrape_interval_seconds)
    console.print("predictions served per replica (from Prometheus):")
    for replica, value in sorted(per_replica.items()):
        console.print(f"  {replica}: {value:.0f}")

    dashboards = s.url(state.ports.get("dashboards", s.dashboard_port))
    # The overview's address from its file, so a changed uid cannot print a dead link.
    overview = load_dashboard(DASHBOARD_DIR / "capacity-overview.json")["uid"]
    graph = (
        f"{prometheus.page('graph')}?g0.expr={quote(PER_REPLICA_RPS)}&g0.tab=0&g0.range_input=15m"
    )
    console.print(
        f"""
[bold]Where to look[/bold]
  Dashboards             {dashboards}/d/{overview}    all: {dashboards}/
  API (through Traefik)  {api}/    POST {api}/predict    docs {api}/docs
  Traefik dashboard      {s.url(s.traefik_port)}/dashboard/
  Prometheus             {s.url(s.prometheus_port)}   targets {prometheus.page("targets")}
  Pushgateway            {s.url(s.pushgateway_port)}
  Per-replica RPS        {PER_REPLICA_RPS}
                         {graph}
  Live SLO table         make watch
  Stack state            make status      logs in {stack.files.logs}/
  More load              make load (Locust UI on :8089), make scale REPLICAS=4
  Stop everything        make down
""",
        highlight=False,
    )
