"""Traefik in Docker runs with the native runtime's settings: the same static file, and
labels that say what the native launcher writes into its file provider."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from lab.runtimes.native.configs import (
    API_ROUTE_RULE,
    HEALTH_CHECK,
    TRAEFIK_DIR,
    traefik_dynamic,
)
from lab.runtimes.native.settings import NativeSettings
from tests.docker.compose_file import load_compose
from tests.support import REPO

ROUTER = "traefik.http.routers.api."
SERVICE = "traefik.http.services.api.loadbalancer."


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def labels(compose: dict[str, Any]) -> dict[str, str]:
    return compose["services"]["api"]["labels"]


def under(labels: dict[str, str], prefix: str) -> dict[str, str]:
    """Labels below a prefix, keys lower-cased: Traefik reads label keys case-insensitively."""
    return {k[len(prefix) :].lower(): v for k, v in labels.items() if k.startswith(prefix)}


def lowered(values: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in values.items()}


def test_router_is_the_native_router(labels: dict[str, str]) -> None:
    native = traefik_dynamic(NativeSettings(), [])["http"]["routers"]["api"]
    router = under(labels, ROUTER)

    assert labels["traefik.enable"] == "true"
    assert router["rule"] == API_ROUTE_RULE == native["rule"]
    assert router["entrypoints"] == ",".join(native["entryPoints"]) == "web"
    assert router["middlewares"] == ",".join(native["middlewares"]) == "api-retry@file"
    assert router["service"] == native["service"]


def test_health_checks_and_transport_are_the_native_ones(labels: dict[str, str]) -> None:
    native = traefik_dynamic(NativeSettings(), [])["http"]["services"]["api"]["loadBalancer"]
    service = under(labels, SERVICE)

    assert under(labels, SERVICE + "healthcheck.") == lowered(HEALTH_CHECK)
    assert "passiveHealthCheck" not in native
    assert not under(labels, SERVICE + "passivehealthcheck.")
    assert service["serverstransport"] == native["serversTransport"] == "api-transport@file"
    assert service["passhostheader"] == str(native["passHostHeader"]).lower()
    assert service["server.port"] == "8001"


def test_labelled_middleware_and_transport_exist_in_the_shared_file(labels: dict[str, str]) -> None:
    shared = yaml.safe_load((TRAEFIK_DIR / "dynamic" / "shared.yml").read_text())["http"]

    middleware = under(labels, ROUTER)["middlewares"].removesuffix("@file")
    transport = under(labels, SERVICE)["serverstransport"].removesuffix("@file")
    assert middleware in shared["middlewares"]
    assert transport in shared["serversTransports"]


def test_traefik_mounts_the_static_file_both_runtimes_share(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["traefik"]["volumes"]
    static = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())

    # The native launcher reads TRAEFIK_DIR / traefik.yml: the very file mounted here.
    assert (REPO / "traefik" / "traefik.yml").resolve() == (TRAEFIK_DIR / "traefik.yml").resolve()
    assert "./traefik/traefik.yml:/etc/traefik/traefik.yml:ro" in volumes
    dynamic = static["providers"]["file"]["directory"]
    assert f"./traefik/dynamic:{dynamic}:ro" in volumes
    assert not [v for v in volumes if "docker.sock" in v], "Traefik asks the socket proxy"


def test_docker_provider_routes_only_opted_in_containers_on_the_lab_network(
    compose: dict[str, Any],
) -> None:
    docker = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())["providers"]["docker"]

    assert docker["exposedByDefault"] is False
    assert docker["network"] == compose["networks"]["default"]["name"]
    assert compose["name"] == "capacity-lab"
    # The socket proxy's service name and port, on a network both join.
    assert docker["endpoint"] == "tcp://socket-proxy:2375"
    assert "docker-api" in compose["services"]["traefik"]["networks"]


def test_entry_points_are_the_published_ports(compose: dict[str, Any]) -> None:
    static = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())
    ports = compose["services"]["traefik"]["ports"]

    for entry_point, bind in (("web", "127.0.0.1"), ("traefik", "127.0.0.1")):
        port = static["entryPoints"][entry_point]["address"].rsplit(":", 1)[1]
        assert f"{bind}:{port}:{port}" in ports
    assert static["ping"]["entryPoint"] == "traefik", "the container's health check uses ping"
