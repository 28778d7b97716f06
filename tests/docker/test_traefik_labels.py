"""Traefik in Docker runs with the native runtime's settings: the same static file, and
labels that say what the native launcher writes into its file provider."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from lab.core import Deployment
from lab.runtimes.docker.runtime import deployment_env
from lab.runtimes.native.configs import (
    API_ROUTE_RULE,
    HEALTH_CHECK,
    PREDICT_ROUTE_RULE,
    TRAEFIK_DIR,
    predict_router,
    traefik_dynamic,
)
from lab.runtimes.native.settings import NativeSettings
from tests.docker.compose_file import TEST_ENV, load_compose
from tests.support import REPO

DEFAULT_CONFIG = "r2-c1.0-m1g"
ROUTER = "traefik.http.routers.api."
PREDICT_ROUTER = f"traefik.http.routers.{predict_router(DEFAULT_CONFIG)}."
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


def routers_of(labels: dict[str, str]) -> set[str]:
    return {k.split(".")[3] for k in labels if k.startswith("traefik.http.routers.")}


@pytest.mark.parametrize(("name", "prefix", "rule"), [
    ("api", ROUTER, API_ROUTE_RULE),
    (predict_router(DEFAULT_CONFIG), PREDICT_ROUTER, PREDICT_ROUTE_RULE),
])  # fmt: skip
def test_routers_are_the_native_routers(
    labels: dict[str, str], name: str, prefix: str, rule: str
) -> None:
    native = traefik_dynamic(NativeSettings(), [], DEFAULT_CONFIG)["http"]["routers"]
    router = under(labels, prefix)

    assert labels["traefik.enable"] == "true"
    assert routers_of(labels) == set(native) == {"api", "predict-r2-c1_0-m1g"}
    assert router["rule"] == rule == native[name]["rule"]
    assert router["entrypoints"] == ",".join(native[name]["entryPoints"]) == "web"
    assert router["middlewares"] == ",".join(native[name]["middlewares"]) == "api-retry@file"
    assert router["service"] == native[name]["service"] == "api"


@pytest.mark.parametrize("label", ["r2-c1.0-m1g", "r1-c0.25-m512m", "r4-cmax-mmax"])
def test_prediction_router_is_named_after_the_config_the_runtime_sets(label: str) -> None:
    env = {**TEST_ENV, **deployment_env(Deployment.from_label(label))}
    labels = load_compose(env)["services"]["api"]["labels"]

    assert labels["lab.config"] == label
    assert routers_of(labels) == {"api", predict_router(label)}
    # A Traefik label's name stops at the next dot: the router's name must hold none.
    assert "." not in predict_router(label)


def test_prediction_router_takes_only_predictions_and_api_router_the_rest() -> None:
    def paths(rule: str) -> set[str]:
        return set(re.findall(r"Path\(`([^`]*)`\)", rule))

    # Disjoint, so no router priority decides; /ready is never a prediction.
    assert paths(PREDICT_ROUTE_RULE) == {"/predict", "/predict/batch"}
    assert paths(API_ROUTE_RULE) == {
        "/",
        "/health",
        "/ready",
        "/metadata",
        "/docs",
        "/openapi.json",
    }
    assert (
        " || ".join(f"Path(`{p}`)" for p in sorted(paths(PREDICT_ROUTE_RULE))) == PREDICT_ROUTE_RULE
    )


def test_health_checks_and_transport_are_the_native_ones(labels: dict[str, str]) -> None:
    native = traefik_dynamic(NativeSettings(), [], DEFAULT_CONFIG)["http"]["services"]["api"][
        "loadBalancer"
    ]
    service = under(labels, SERVICE)

    assert under(labels, SERVICE + "healthcheck.") == lowered(HEALTH_CHECK)
    assert "passiveHealthCheck" not in native
    assert not under(labels, SERVICE + "passivehealthcheck.")
    assert service["serverstransport"] == native["serversTransport"] == "api-transport@file"
    assert service["passhostheader"] == str(native["passHostHeader"]).lower()
    assert service["server.port"] == "8001"


def test_labelled_middleware_and_transport_exist_in_the_shared_file(labels: dict[str, str]) -> None:
    shared = yaml.safe_load((TRAEFIK_DIR / "dynamic" / "shared.yml").read_text())["http"]

    for prefix in (ROUTER, PREDICT_ROUTER):
        middleware = under(labels, prefix)["middlewares"].removesuffix("@file")
        assert middleware in shared["middlewares"]
    transport = under(labels, SERVICE)["serverstransport"].removesuffix("@file")
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
