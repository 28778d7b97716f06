"""The trace path of the Docker runtime: replicas -> OTel collector -> Tempo <- Grafana."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from api.resources import parse_memory
from tests.docker.compose_file import load_compose
from tests.support import REPO

COLLECTOR = yaml.safe_load((REPO / "tracing" / "otel-collector.yml").read_text())
TEMPO = yaml.safe_load((REPO / "tracing" / "tempo.yml").read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def test_collector_receives_what_the_replicas_send(services: dict[str, dict[str, Any]]) -> None:
    protocols = COLLECTOR["receivers"]["otlp"]["protocols"]
    endpoint = services["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]

    # The replicas export over OTLP/HTTP.
    assert endpoint == f"http://otel-collector:{protocols['http']['endpoint'].rsplit(':', 1)[1]}"
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert set(services["otel-collector"]["expose"]) == {"4317", "4318"}


def test_collector_forwards_every_trace_to_tempo(services: dict[str, dict[str, Any]]) -> None:
    pipeline = COLLECTOR["service"]["pipelines"]["traces"]
    exporter = COLLECTOR["exporters"][pipeline["exporters"][0]]
    tempo_grpc = TEMPO["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]

    assert pipeline["exporters"] == ["otlp_grpc/tempo"]
    assert exporter["endpoint"] == f"tempo:{tempo_grpc.rsplit(':', 1)[1]}"
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"][0] == "memory_limiter"
    assert services["otel-collector"]["depends_on"]["tempo"] == {"condition": "service_healthy"}


def test_collector_health_check_asks_its_health_extension(
    services: dict[str, dict[str, Any]],
) -> None:
    port = COLLECTOR["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]

    assert "health_check" in COLLECTOR["service"]["extensions"]
    assert f"http://127.0.0.1:{port}/" in services["otel-collector"]["healthcheck"]["test"]
    assert (
        "./tracing/otel-collector.yml:/etc/otelcol-contrib/config.yaml:ro"
        in services["otel-collector"]["volumes"]
    )


def test_tempo_keeps_traces_in_its_volume_and_answers_grafana(
    services: dict[str, dict[str, Any]],
) -> None:
    storage = TEMPO["storage"]["trace"]
    grafana_datasources = (REPO / "grafana" / "provisioning" / "datasources").glob("*.y*ml")
    urls = [
        source.get("url")
        for path in grafana_datasources
        for source in yaml.safe_load(path.read_text()).get("datasources", [])
        if source.get("type") == "tempo"
    ]

    assert storage["backend"] == "local"
    assert storage["local"]["path"].startswith("/var/tempo/")
    assert "tempo-data:/var/tempo" in services["tempo"]["volumes"]
    assert str(TEMPO["server"]["http_listen_port"]) in services["tempo"]["expose"]
    assert urls == [f"http://tempo:{TEMPO['server']['http_listen_port']}"]
    assert TEMPO["usage_report"]["reporting_enabled"] is False


def test_collector_refuses_spans_before_its_container_limit_is_reached(
    services: dict[str, dict[str, Any]],
) -> None:
    limiter = COLLECTOR["processors"]["memory_limiter"]
    limit = parse_memory(services["otel-collector"]["deploy"]["resources"]["limits"]["memory"])

    assert limit is not None
    # The limiter's ceiling plus the spike it allows stays under what the kernel enforces.
    assert (limiter["limit_mib"] + limiter["spike_limit_mib"]) * 1024**2 < limit
