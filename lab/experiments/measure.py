"""What one measured window of one deployment looked like, read back from Prometheus."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from lab.experiments.vocabulary import instant, range_of, windowed
from monitoring.prom import Sample

LAYERS = ("client", "edge", "server", "model")

# Each layer's latency histogram, for the share above its top bucket (every layer has
# its own bucket set: the model's tops out at 1 s, the others at 60 s). `{run}` and
# `{config}` are filled per window.
HISTOGRAMS = {
    "client": 'locust_request_duration_seconds_bucket{{job="locust", run_id="{run}", '
    'name=~"POST /predict.*"}}',
    "edge": 'traefik_router_request_duration_seconds_bucket{{router=~"predict-{router}@.*"}}',
    "server": 'http_request_duration_seconds_bucket{{job="api", config="{config}", '
    'handler=~"/predict.*"}}',
    "model": 'model_inference_seconds_bucket{{job="api", config="{config}"}}',
}


class QueryApi(Protocol):
    """What the reader needs of Prometheus: live (RecordingPrometheus) or replayed."""

    def query(self, promql: str, time: float | None = None) -> list[Sample]: ...


@dataclass
class LayerStats:
    rps: float | None = None
    error_ratio: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    p95_success_s: float | None = None
    good_ratio: float | None = None
    # The histogram's highest finite bound, and the share of the window's observations
    # above it (their quantiles are then lower bounds).
    top_bucket_s: float | None = None
    overflow_ratio: float | None = None


@dataclass
class ReplicaStats:
    replica: str
    rps: float | None
    p95_s: float | None
    cpu_cores: float | None
    cpu_limit_cores: float | None
    cpu_of_limit: float | None
    throttled_ratio: float | None
    memory_peak_bytes: float | None
    memory_limit_bytes: float | None
    up_min: float | None


@dataclass
class Measurement:
    config: str
    run_id: str
    start: float
    end: float
    layers: dict[str, LayerStats] = field(default_factory=dict)
    errors_by_origin: dict[str, float] = field(default_factory=dict)
    replicas: list[ReplicaStats] = field(default_factory=list)
    # Over the whole run, not the window (see WindowReader.count_run).
    client_successes: float | None = None
    server_successes: float | None = None
    generator_cpu_max: float | None = None
    users_max: float | None = None
    # Open model: task starts the arrival clock offered per second, and every request
    # the client completed per second (all names; each task sends one request).
    offered_rate: float | None = None
    client_all_rps: float | None = None
    generator_cpu_mean: float | None = None
    # Cores the proxy (Traefik) used, and the host's measured CPU (0-1 of all cores).
    proxy_cpu_cores: float | None = None
    host_busy: float | None = None
    # Per scrape target: [samples found, samples expected] in the window.
    scrapes: dict[str, list[int]] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float | None:
        """Requests the client completed per second, all names: the unit of arrivals
        (each task sends one request), so achieved / offered is the sustained share."""
        return self.client_all_rps

    @property
    def sustained_share(self) -> float | None:
        if not self.offered_rate or self.client_all_rps is None:
            return None
        return self.client_all_rps / self.offered_rate

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        data.pop("seconds", None)
        data["layers"] = {k: LayerStats(**v) for k, v in data["layers"].items()}
        data["replicas"] = [ReplicaStats(**r) for r in data["replicas"]]
        return cls(**data)


# Locust's open-model arrivals, one series per process that draws them. Since each
# worker pushes only its own share (and the master none), the run's rate is their sum.
ARRIVALS_SUMMED = "sum"
# Runs stored before that (results.json without `arrivals`): the master also pushed the
# total, so the largest series was the run's.
ARRIVALS_LARGEST = "max"


class WindowReader:
    """Runs the vocabulary's queries over [start, end] for one config and one run."""

    def __init__(
        self,
        prometheus: QueryApi,
        scrape_interval_s: float,
        push_interval_s: float = 1.0,
        arrivals: str = ARRIVALS_SUMMED,
    ) -> None:
        self.prometheus = prometheus
        self.scrape = scrape_interval_s
        self.push = push_interval_s
        # How one run's arrival series add up (ARRIVALS_*): stored runs keep the way they
        # were read, so their raw answers replay.
        self.arrivals = arrivals

    def _one(self, query: str, at: float, config: str | None = None) -> float | None:
        for sample in self.prometheus.query(query, time=at):
            if config is None or sample.labels.get("config") in (config, None):
                value = sample.value
                return None if value != value else value  # NaN: no traffic
        return None

    def _by_replica(self, query: str, at: float, config: str) -> dict[str, float]:
        return {
            s.labels["replica"]: s.value
            for s in self.prometheus.query(query, time=at)
            if s.labels.get("config") == config and "replica" in s.labels and s.value == s.value
        }

    def layer(self, layer: str, window: float, at: float, config: str, run_id: str) -> LayerStats:
        run = run_id if layer == "client" else None
        stats = LayerStats()

        def read(record: str) -> float | None:
            try:
                return self._one(windowed(record, window, layer, run), at, config)
            except KeyError:
                return None

        stats.rps = read("config:requests:rate1m")
        errors = read("config:errors:rate1m")
        if stats.rps and errors is not None:
            stats.error_ratio = errors / stats.rps
        stats.p50_s = read("config:latency_seconds:p50")
        stats.p95_s = read("config:latency_seconds:p95")
        stats.p99_s = read("config:latency_seconds:p99")
        stats.p95_success_s = read("config:latency_success_seconds:p95")
        stats.good_ratio = read("config:slo_good:ratio_rate1m")
        stats.top_bucket_s, stats.overflow_ratio = self._overflow(layer, window, at, config, run_id)
        return stats

    def _overflow(
        self, layer: str, window: float, at: float, config: str, run_id: str
    ) -> tuple[float | None, float | None]:
        """The top finite bucket of the layer's histogram and the share of observations
        above it, from the buckets themselves (no bucket set is assumed)."""
        # Traefik's router names the config with `_` for its dot (prometheus/rules/layers.yml).
        router = config.replace(".", "_")
        selector = HISTOGRAMS[layer].format(run=run_id, config=config, router=router)
        buckets = {
            float(s.labels["le"]): s.value
            for s in self.prometheus.query(
                f"sum by (le) (rate({selector}[{range_of(window)}]))", time=at
            )
            if "le" in s.labels and s.value == s.value
        }
        finite = [le for le in buckets if math.isfinite(le)]
        total = buckets.get(math.inf)
        if not finite or not total:
            return (max(finite) if finite else None), None
        top = max(finite)
        return top, max(0.0, total - buckets[top]) / total

    def measure(self, config: str, run_id: str, start: float, end: float) -> Measurement:
        window = end - start
        result = Measurement(config=config, run_id=run_id, start=start, end=end)
        for layer in LAYERS:
            result.layers[layer] = self.layer(layer, window, end, config, run_id)
        result.errors_by_origin = self._origins(result, window, end, config, run_id)
        result.replicas = self._replicas(window, end, config)
        w = range_of(window)
        run = f'run_id="{run_id}"'
        result.generator_cpu_max = self._one(
            f"max(max_over_time(locust_cpu_percent{{{run}}}[{w}]))", end
        )
        result.users_max = self._one(f"max(max_over_time(locust_users{{{run}}}[{w}]))", end)
        result.offered_rate = self._one(
            f"{self.arrivals}(rate(locust_arrivals_total{{{run}}}[{w}]))", end
        )
        result.client_all_rps = self._one(f"sum(rate(locust_requests_total{{{run}}}[{w}]))", end)
        cpu_mean = self._one(f"sum(avg_over_time(locust_cpu_percent{{{run}}}[{w}]))", end)
        result.generator_cpu_mean = cpu_mean
        result.proxy_cpu_cores = self._one(
            f'sum(rate(process_cpu_seconds_total{{job="traefik"}}[{w}]))', end
        )
        result.scrapes = self._scrapes(window, end, config, run_id)
        return result

    def _scrapes(self, window: float, at: float, config: str, run_id: str) -> dict[str, list[int]]:
        """Samples each scrape target has in the window against those its interval
        promises; the load generator's pushes by their age at each scrape."""
        w = range_of(window)
        expected = int(window // self.scrape)
        found: dict[str, list[int]] = {}
        query = (
            f'count_over_time(up{{job="api", config="{config}"}}[{w}]) '
            f'or count_over_time(up{{job=~"traefik|pushgateway"}}[{w}])'
        )
        for sample in self.prometheus.query(query, time=at):
            name = sample.labels.get("replica") or sample.labels.get("job", "?")
            found[name] = [int(sample.value), expected]
        # Pushes older than a scrape interval plus a push interval were missed.
        step = f"{max(1, int(self.scrape))}s"
        age = self._one(
            f'max_over_time((timestamp(push_time_seconds{{run_id="{run_id}"}}) '
            f'- push_time_seconds{{run_id="{run_id}"}})[{w}:{step}])',
            at,
        )
        if age is not None:
            pushes = int(window // self.push)
            late = max(0, int((age - self.scrape) // self.push))
            found["load generator pushes"] = [max(0, pushes - late), pushes]
        return found

    def count_run(
        self, config: str, run_id: str, before: float, after: float
    ) -> tuple[float, float]:
        """Successful predictions over a whole run, counted by Locust and by the replicas.

        Counters are read at two instants around the run (nothing else sends predictions
        meanwhile), not extrapolated over a window, so the two counts are comparable to
        the request: a gap means requests lost or retried between them.
        """
        span = range_of(after - before + 60)
        client = self._one(
            f'sum(last_over_time(locust_requests_total{{job="locust", run_id="{run_id}", '
            f'name=~"POST /predict.*", result="success"}}[{span}]))',
            after,
        )
        query = (
            'sum by (config) (http_requests_total{job="api", handler=~"/predict.*", status=~"2.."})'
        )
        server_after = self._one(query, after, config) or 0.0
        server_before = self._one(query, before, config) or 0.0
        return client or 0.0, server_after - server_before

    def _origins(
        self, result: Measurement, window: float, at: float, config: str, run_id: str
    ) -> dict[str, float]:
        """Shares of the client's requests that failed, by where the failure was born:
        the app (5xx from a replica), the proxy (5xx Traefik made itself), the client
        side (timeouts, refused connections, 4xx for invalid input)."""
        client_rps = result.layers["client"].rps
        if not client_rps:
            return {}
        client = (
            self._one(windowed("config:errors:rate1m", window, "client", run_id), at, config) or 0
        )
        edge = self._one(windowed("config:errors:rate1m", window, "edge"), at, config) or 0
        app = self._one(windowed("config:errors:rate1m", window, "server"), at, config) or 0
        return {
            "app": app / client_rps,
            "proxy": max(edge - app, 0.0) / client_rps,
            "client": max(client - edge, 0.0) / client_rps,
        }

    def _replicas(self, window: float, at: float, config: str) -> list[ReplicaStats]:
        w = range_of(window)
        rps = self._by_replica(windowed("replica:requests:rate1m", window), at, config)
        p95 = self._by_replica(windowed("replica:latency_seconds:p95", window), at, config)
        cpu = self._by_replica(windowed("replica:cpu_usage_cores:rate1m", window), at, config)
        limit = self._by_replica(instant("replica:cpu_limit_cores"), at, config)
        throttled = self._by_replica(
            windowed("replica:cpu_throttled_periods:ratio_rate1m", window), at, config
        )
        step = f"{max(1, int(self.scrape))}s"
        memory = self._by_replica(
            f"max_over_time(({instant('replica:memory_usage_bytes')})[{w}:{step}])", at, config
        )
        memory_limit = self._by_replica(instant("replica:memory_limit_bytes"), at, config)
        up = self._by_replica(f'min_over_time(up{{job="api"}}[{w}])', at, config)
        stats = []
        for name in sorted(set(rps) | set(up), key=_natural):
            cores, cap = cpu.get(name), limit.get(name)
            stats.append(
                ReplicaStats(
                    replica=name,
                    rps=rps.get(name),
                    p95_s=p95.get(name),
                    cpu_cores=cores,
                    cpu_limit_cores=cap,
                    cpu_of_limit=cores / cap if cores is not None and cap else None,
                    throttled_ratio=throttled.get(name),
                    memory_peak_bytes=memory.get(name),
                    memory_limit_bytes=memory_limit.get(name),
                    up_min=up.get(name),
                )
            )
        return stats


def _natural(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (name, 0)
