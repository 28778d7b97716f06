"""docker-compose.yaml, checked without a Docker engine: schema, pins, health, mounts, ports."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from api.settings import ApiSettings
from lab.core import Deployment, parse_cpus, parse_memory
from tests.docker.compose_file import (
    COMPOSE_FILE,
    SCHEMA_FILE,
    TEST_ENV,
    ImageRef,
    InterpolationError,
    interpolate,
    load_compose,
    raw_compose,
    variables,
)
from tests.support import REPO

# The ports a user sees (DESIGN.md): API via Traefik, Traefik's dashboard and metrics,
# Prometheus, Pushgateway, Grafana, Locust's UI and its master's port for workers.
DOCUMENTED_PORTS = {8000, 8080, 9090, 9091, 3000, 8089, 5557}
# Host paths outside the repository that containers may read: the Docker socket (the
# socket proxy's), and what cAdvisor documents for reading cgroups, less /var/run.
HOST_PATHS = {"/var/run/docker.sock", "/", "/sys", "/var/lib/docker", "/dev/disk"}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each short-syntax port."""
    out = []
    for spec in service.get("ports", []):
        host_ip, host_port, target = str(spec).rsplit(":", 2)
        out.append((host_ip, int(host_port), int(target)))
    return out


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


# ------------------------------------------------------------------ interpolation


def test_interpolation_follows_the_compose_specification() -> None:
    env = {"SET": "x", "EMPTY": ""}

    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d}", env) == "x d d"
    assert interpolate("${SET-d} ${EMPTY-d} ${UNSET-d}", env) == "x  d"
    assert interpolate("${SET:+y}|${EMPTY:+y}|${EMPTY+y}|${UNSET+y}", env) == "y||y|"
    assert interpolate("$SET ${SET} $$SET ${UNSET:-${SET}}", env) == "x x $SET x"
    assert interpolate("${EMPTY?m}", env) == ""
    with pytest.raises(InterpolationError, match="UNSET is missing a value: say why"):
        interpolate("${UNSET?say why}", env)
    with pytest.raises(InterpolationError, match="EMPTY is missing a value"):
        interpolate("${EMPTY:?say why}", env)


def test_compose_refuses_to_start_without_the_grafana_password() -> None:
    with pytest.raises(InterpolationError, match=r"set GRAFANA_ADMIN_PASSWORD in \.env"):
        load_compose({})
    with pytest.raises(InterpolationError, match="GRAFANA_ADMIN_PASSWORD"):
        load_compose({"GRAFANA_ADMIN_PASSWORD": ""})


def spec_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The schema names draft 07 without the trailing `#` jsonschema looks it up by.
    assert "draft-07" in schema["$schema"]
    return jsonschema.Draft7Validator(schema)


def test_compose_file_validates_against_the_compose_spec(compose: dict[str, Any]) -> None:
    validator = spec_validator()

    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))

    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_validation_catches_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "api": {"imagee": "x:1"}}}

    assert not spec_validator().is_valid(broken)


# ------------------------------------------------------------ images and health


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image name (built images are tagged too)"
        assert ImageRef.parse(image).exact_version, f"{name}: {image} is not pinned"


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert not check.get("disable"), name
        assert check.get("test", ["NONE"])[0] in {"CMD", "CMD-SHELL"}, f"{name} has no check"
        assert duration_seconds(check["interval"]) <= 10, name
        assert duration_seconds(check["timeout"]) < duration_seconds(check["interval"]) + 1


def test_dependencies_wait_for_health(services: dict[str, dict[str, Any]]) -> None:
    dependencies = 0
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            dependencies += 1
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "healthcheck" in services[dependency], dependency

    assert dependencies >= 5


def test_every_service_says_what_it_is_in_a_comment() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    start = lines.index("services:") + 1
    end = next(i for i in range(start, len(lines)) if re.match(r"[a-z]", lines[i]))
    names = []
    for i in range(start, end):
        if re.fullmatch(r"  [a-z][a-z-]*:", lines[i]):
            names.append(lines[i].strip(" :"))
            assert lines[i - 1].startswith("  # "), f"no comment above {lines[i].strip()}"

    assert set(names) == set(raw_compose()["services"])


# --------------------------------------------------------------- mounts and volumes


def test_every_mounted_host_path_exists(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts {source}, which is missing"
            elif source.startswith("/"):
                assert source in HOST_PATHS, f"{name} mounts host path {source}"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"
                used.add(source)
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert (context / build["dockerfile"]).is_file(), name

    assert used == named, "declared volumes nobody mounts"
    assert list(raw_compose())[-1] == "volumes", "named volumes belong at the bottom"


def test_host_system_paths_are_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume.startswith(("/", "./")):
                assert volume.endswith(":ro"), f"{name}: {volume}"


# -------------------------------------------------------------------------- ports


def test_published_ports_are_unique_and_the_documented_ones(
    services: dict[str, dict[str, Any]],
) -> None:
    ports = [p for s in services.values() for p in published(s)]
    host_ports = [host for _, host, _ in ports]

    assert len(host_ports) == len(set(host_ports))
    assert set(host_ports) == DOCUMENTED_PORTS
    assert all(host == target for _, host, target in ports)
    assert {ip for ip, _, _ in ports} == {"127.0.0.1"}, "nothing listens beyond this host"


def test_traefik_dashboard_stays_on_localhost_whatever_bind_address_says() -> None:
    services = load_compose({**TEST_ENV, "BIND_ADDRESS": "0.0.0.0"})["services"]

    assert ("127.0.0.1", 8080, 8080) in published(services["traefik"])
    assert ("0.0.0.0", 8000, 8000) in published(services["traefik"])


def test_internal_services_only_expose(services: dict[str, dict[str, Any]]) -> None:
    user_facing = {"traefik", "prometheus", "pushgateway", "grafana", "locust"}
    for name, service in services.items():
        if name not in user_facing:
            assert "ports" not in service, f"{name} publishes a port"


# ---------------------------------------------------------------------- the API


def test_api_scales_with_limits_and_without_fixed_names(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]

    assert "container_name" not in api and "ports" not in api
    assert api["deploy"]["replicas"] == "2"
    assert api["deploy"]["resources"]["limits"] == {"cpus": "1", "memory": "1g"}
    assert api["build"] == {"context": ".", "dockerfile": "api/Dockerfile"}


def test_api_default_config_label_names_the_default_deployment(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]
    limits = api["deploy"]["resources"]["limits"]
    expected = Deployment.parse(api["deploy"]["replicas"], limits["cpus"], limits["memory"])

    assert api["labels"]["lab.config"] == expected.label
    assert api["environment"]["API_CONFIG"] == expected.label
    assert parse_cpus(api["environment"]["API_CPU_LIMIT"]) == expected.cpus
    assert parse_memory(api["environment"]["API_MEMORY_LIMIT"]) == expected.memory


def test_api_environment_is_accepted_by_the_service_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["api"]["environment"]
    fields = {k.removeprefix("API_").lower(): v for k, v in env.items() if k.startswith("API_")}

    settings = ApiSettings(**fields)

    assert settings.host == "0.0.0.0"
    assert settings.port == 8001
    assert "8001" in services["api"]["expose"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert "API_REPLICA" not in env, "the replica's name must stay its host name"


def test_api_stop_grace_outlasts_the_drain(services: dict[str, dict[str, Any]]) -> None:
    fields = ApiSettings.model_fields
    drain = fields["drain_seconds"].default + fields["shutdown_timeout_seconds"].default

    assert duration_seconds(services["api"]["stop_grace_period"]) > drain


def test_api_health_check_asks_readiness(services: dict[str, dict[str, Any]]) -> None:
    test = " ".join(services["api"]["healthcheck"]["test"])

    assert "http://127.0.0.1:8001/ready" in test
    assert "urllib.request" in test, "the slim image has no curl"


# ------------------------------------------------------------- the other services


def test_grafana_has_no_anonymous_access(services: dict[str, dict[str, Any]]) -> None:
    env = services["grafana"]["environment"]

    assert env["GF_SECURITY_ADMIN_PASSWORD"] == TEST_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "${GRAFANA_ADMIN_PASSWORD:?" in COMPOSE_FILE.read_text()


def test_prometheus_runs_with_exemplars_and_the_lifecycle_api(
    services: dict[str, dict[str, Any]],
) -> None:
    command = services["prometheus"]["command"]

    assert "--enable-feature=exemplar-storage" in command
    assert "--web.enable-lifecycle" in command
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    volumes = services["prometheus"]["volumes"]
    assert "./prometheus/prometheus.docker.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in volumes


def test_locust_runs_under_the_load_profile_against_traefik(
    services: dict[str, dict[str, Any]],
) -> None:
    master, worker = services["locust"], services["locust-worker"]

    assert master["profiles"] == worker["profiles"] == ["load"]
    assert [x for x in master["command"] if x in {"--master", "http://traefik:8000"}] == [
        "--master",
        "http://traefik:8000",
    ]
    assert master["command"][:2] == ["--config", "locust/locust.conf"]
    assert worker["command"][-3:] == ["--worker", "--master-host", "locust"]
    assert master["environment"]["LOCUST_PUSHGATEWAY"] == "http://pushgateway:9091"
    assert worker["environment"]["LOCUST_PUSHGATEWAY"] == "http://pushgateway:9091"
    # Unset unless `make load-headless` sets them: the web UI refuses --run-time.
    assert master["environment"]["LOCUST_RUN_TIME"] is None
    assert "LOCUST_HEADLESS" not in worker["environment"]


def test_every_lab_option_of_locust_passes_through(services: dict[str, dict[str, Any]]) -> None:
    declared = {
        name
        for path in (REPO / "locust").glob("*.py")
        for name in re.findall(r'env_var="(LOCUST_[A-Z0-9_]+)"', path.read_text())
    }
    # A summary file would be written inside the container, where nobody reads it.
    inside_only = {"LOCUST_SUMMARY_JSON"}

    assert {"LOCUST_SHAPE", "LOCUST_CHECK_P95"} <= declared
    for name in ("locust", "locust-worker"):
        assert declared - inside_only <= set(services[name]["environment"]), name


def test_no_other_service_runs_under_a_profile(services: dict[str, dict[str, Any]]) -> None:
    assert {n for n, s in services.items() if s.get("profiles")} == {"locust", "locust-worker"}


# ------------------------------------------------------------------ .env.example


def test_env_example_documents_every_variable_without_a_usable_password() -> None:
    example = (REPO / ".env.example").read_text()
    assigned = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )

    assert variables(COMPOSE_FILE.read_text()) <= set(assigned)
    assert assigned["GRAFANA_ADMIN_PASSWORD"] == ""
    label = Deployment.parse(assigned["REPLICAS"], assigned["CPUS"], assigned["MEMORY"]).label
    assert assigned["CONFIG"] == label
