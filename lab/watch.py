"""`python -m lab watch` (`make watch`): the SLO numbers live in a terminal, for people on SSH.

Two tables from the recording rules (prometheus/rules/), refreshed every scrape interval:
per config (requests/s at the client and the server, client error %, share of requests
under 1 s, P95 per layer, replicas up) and per replica (requests/s, P95, CPU and memory as
a share of the limit, throttled CPU periods). A number outside the SLO (lab/slo.py) is
red. Ctrl-C ends it; `--once` prints one frame and exits (scripts, tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from lab import slo
from lab.errors import LabError
from monitoring.prom import Prometheus

LAYERS = ("client", "edge", "server", "model")
CONFIG_QUERIES = {
    "rps_client": 'config:requests:rate1m{layer="client"}',
    "rps_server": 'config:requests:rate1m{layer="server"}',
    "error_ratio": 'config:error_ratio:rate1m{layer="client"}',
    "share_under": 'config:slo_good:ratio_rate1m{layer="client"}',
    "replicas_up": "config:replicas_up:count",
}
REPLICA_QUERIES = {
    "rps": "replica:requests:rate1m",
    "p95": "replica:latency_seconds:p95",
    "cpu": "replica:cpu_usage:ratio_limit",
    "memory": "replica:memory_usage:ratio_limit",
    "throttled": "replica:cpu_throttled_periods:ratio_rate1m",
}
P95_BY_LAYER = "config:latency_seconds:p95"
# Above these a replica's resource figure is shown in yellow: the dashboards' red lines.
RESOURCE_WARN = 0.9
THROTTLED_WARN = 0.25


@dataclass
class ConfigRow:
    config: str
    values: dict[str, float] = field(default_factory=dict)
    p95: dict[str, float] = field(default_factory=dict)


@dataclass
class ReplicaRow:
    replica: str
    config: str
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    configs: list[ConfigRow]
    replicas: list[ReplicaRow]
    at: float


def take_snapshot(prometheus: Prometheus) -> Snapshot:
    """One instant query per recorded name; LabError when Prometheus does not answer."""
    try:
        return _snapshot(prometheus)
    except ValueError:
        # Something answers on that port, but not Prometheus' JSON.
        raise LabError(
            f"{prometheus.url} does not answer like Prometheus; is the stack up (make status)?"
        ) from None


def _snapshot(prometheus: Prometheus) -> Snapshot:
    configs: dict[str, ConfigRow] = {}
    for key, promql in CONFIG_QUERIES.items():
        for sample in prometheus.query(promql):
            name = sample.labels.get("config", "?")
            configs.setdefault(name, ConfigRow(name)).values[key] = sample.value
    for sample in prometheus.query(P95_BY_LAYER):
        name = sample.labels.get("config", "?")
        layer = sample.labels.get("layer", "?")
        configs.setdefault(name, ConfigRow(name)).p95[layer] = sample.value
    replicas: dict[tuple[str, str], ReplicaRow] = {}
    for key, promql in REPLICA_QUERIES.items():
        for sample in prometheus.query(promql):
            ident = (sample.labels.get("config", "?"), sample.labels.get("replica", "?"))
            row = replicas.setdefault(ident, ReplicaRow(replica=ident[1], config=ident[0]))
            row.values[key] = sample.value
    return Snapshot(
        configs=[configs[name] for name in sorted(configs)],
        replicas=[replicas[ident] for ident in sorted(replicas)],
        at=time.time(),
    )


def _number(value: float | None, text: Callable[[float], str], bad: bool = False) -> Text:
    if value is None or value != value:  # NaN: no request in the window.
        return Text("-", style="dim")
    return Text(text(value), style="bold red" if bad else "")


def _rate(value: float | None) -> Text:
    return _number(value, lambda v: f"{v:.1f}")


def _seconds(value: float | None, limit: float | None = slo.LATENCY_MAX_SECONDS) -> Text:
    def text(v: float) -> str:
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"

    return _number(value, text, bad=limit is not None and value is not None and value >= limit)


def _share(value: float | None, warn: float | None = None, decimals: int = 1) -> Text:
    cell = _number(value, lambda v: f"{v * 100:.{decimals}f} %")
    if warn is not None and value is not None and value >= warn:
        cell.stylize("yellow")
    return cell


def render(snapshot: Snapshot, source: str, interval: float) -> RenderableType:
    configs = Table(
        "config",
        "req/s client",
        "req/s server",
        "errors (client)",
        "under 1 s",
        *(f"P95 {layer}" for layer in LAYERS),
        "replicas up",
        title="Per config (last minute)",
        title_justify="left",
    )
    for row in snapshot.configs:
        v = row.values
        error = v.get("error_ratio")
        up = v.get("replicas_up")
        configs.add_row(
            row.config,
            _rate(v.get("rps_client")),
            _rate(v.get("rps_server")),
            _number(error, lambda x: f"{x * 100:.2f} %", bad=(error or 0) >= slo.ERROR_RATIO_MAX),
            _share(v.get("share_under"), decimals=2),
            # Only the client's P95 decides the SLO; the other layers explain it.
            *(
                _seconds(row.p95.get(layer), slo.LATENCY_MAX_SECONDS if layer == "client" else None)
                for layer in LAYERS
            ),
            _number(up, lambda x: f"{x:.0f}", bad=up == 0),
        )
    replicas = Table(
        "replica",
        "config",
        "req/s",
        "P95 (server)",
        "CPU of limit",
        "memory of limit",
        "CPU throttled",
        title="Per replica (last minute)",
        title_justify="left",
    )
    for row in snapshot.replicas:
        v = row.values
        replicas.add_row(
            row.replica,
            row.config,
            _rate(v.get("rps")),
            _seconds(v.get("p95")),
            _share(v.get("cpu"), RESOURCE_WARN),
            _share(v.get("memory"), RESOURCE_WARN),
            _share(v.get("throttled"), THROTTLED_WARN),
        )
    parts: list[RenderableType] = [configs, replicas]
    if not snapshot.configs and not snapshot.replicas:
        parts.append(Text("No data yet: is a stack up (make up) and scraped?", style="yellow"))
    stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.at))
    parts.append(
        Text(
            f"{source} at {stamp}, every {interval:g} s. SLO: {slo.describe()} "
            "(red: outside it). Ctrl-C to stop.",
            style="dim",
        )
    )
    return Group(*parts)


def unreachable(message: str, interval: float) -> RenderableType:
    return Text(f"{message}\nTrying again every {interval:g} s. Ctrl-C to stop.", style="red")


def watch(
    prometheus: Prometheus,
    interval: float,
    *,
    once: bool = False,
    console: Console | None = None,
) -> None:
    """Print one frame (`once`), or redraw every `interval` seconds until Ctrl-C.

    Prometheus must answer the first query (else LabError); if it stops answering later,
    the screen says so and the next refresh tries again."""
    from rich.live import Live

    console = console or Console()
    first = render(take_snapshot(prometheus), prometheus.url, interval)
    if once:
        console.print(first)
        return
    try:
        with Live(first, console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                try:
                    frame = render(take_snapshot(prometheus), prometheus.url, interval)
                except LabError as exc:
                    frame = unreachable(str(exc), interval)
                live.update(frame, refresh=True)
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends: the last frame stays on screen, the exit code is 0.
        return
