"""prometheus/prometheus.docker.yml: promtool, the shared conventions, and its relabelling."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.runtimes.native.configs import PROMETHEUS_FLAGS, prometheus_config
from lab.runtimes.native.settings import NativeSettings
from tests.docker.compose_file import load_compose
from tests.support import REPO

CONFIG = REPO / "prometheus" / "prometheus.docker.yml"
RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
# A container id as Docker writes it; its first 12 characters are the host name.
CONTAINER_ID = "3f2a9c1e7b4d" + "0123456789abcdef" * 3 + "0123"
CGROUP_PATHS = {
    "systemd": f"/system.slice/docker-{CONTAINER_ID}.scope",
    "cgroupfs": f"/docker/{CONTAINER_ID}",
}


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is installed by `make install` (Debian package prometheus)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


@pytest.fixture(scope="module")
def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


# --------------------------------------------------------------- relabelling, as
# Prometheus does it: the regex must match the whole value of the joined sources.


def _expand(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$\{(\d+)\}|\$(\d+)", lambda m: match.group(int(m[1] or m[2])) or "", template)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Apply replace, keep and labeldrop rules; None when a keep rule drops the target."""
    labels = dict(labels)
    for rule in rules:
        regex = re.compile(rule.get("regex", "(.*)"))
        action = rule.get("action", "replace")
        if action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.fullmatch(k)}
            continue
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = regex.fullmatch(value)
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                result = _expand(rule.get("replacement", "$1"), match)
                if result:
                    labels[rule["target_label"]] = result
                else:
                    labels.pop(rule["target_label"], None)
        else:
            raise AssertionError(f"relabel action {action} is not emulated here")
    return labels


# ------------------------------------------------------------------------ promtool


def test_docker_config_passes_promtool_with_the_shared_rules() -> None:
    result = promtool("check", "config", str(CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    # rule_files is relative to the config: the repository's rules, checked too.
    assert result.stdout.count("SUCCESS") == 1 + 1 + len(RULES)
    assert f"{len(RULES)} rule files found" in result.stdout


def test_rule_files_resolve_to_the_mounted_rules(config: dict[str, Any]) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]

    assert config["rule_files"] == ["rules/*.yml"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in volumes
    assert "./prometheus/prometheus.docker.yml:/etc/prometheus/prometheus.yml:ro" in volumes


# ------------------------------------------------------------ shared conventions


def test_scrape_and_evaluation_every_5_seconds(config: dict[str, Any]) -> None:
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "5s"


def test_le_normalisation_is_the_native_one(
    jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    native = yaml.safe_load(prometheus_config(NativeSettings(), tmp_path))
    native_jobs = {job["job_name"]: job for job in native["scrape_configs"]}

    for job in ("traefik", "pushgateway"):
        assert jobs[job]["metric_relabel_configs"] == native_jobs[job]["metric_relabel_configs"]
    rule = jobs["traefik"]["metric_relabel_configs"][0]
    assert relabel({"le": "1"}, [rule]) == {"le": "1.0"}
    assert relabel({"le": "0.25"}, [rule]) == {"le": "0.25"}
    assert relabel({"le": "+Inf"}, [rule]) == {"le": "+Inf"}


def test_pushgateway_keeps_the_pushed_labels(jobs: dict[str, dict[str, Any]]) -> None:
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["pushgateway"]["static_configs"] == [{"targets": ["pushgateway:9091"]}]
    assert jobs["traefik"]["static_configs"] == [{"targets": ["traefik:8080"]}]


def test_every_job_the_rules_read_is_scraped(
    jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    referenced = {job for path in RULES for job in re.findall(r'job="([^"]+)"', path.read_text())}
    # Locust's series arrive through the Pushgateway with their own job label.
    pushed = {"locust"}
    # The native runtime's supervisor has no Docker counterpart (rules/lab.yml).
    native = yaml.safe_load(prometheus_config(NativeSettings(), tmp_path))
    native_only = {job["job_name"] for job in native["scrape_configs"]} - set(jobs)

    assert {"api", "cadvisor"} <= referenced
    assert native_only == {"supervisor"}
    assert referenced - pushed <= set(jobs) | native_only


# ------------------------------------------------------------------- api targets


def docker_sd_target(network: str, **labels: str) -> dict[str, str]:
    return {
        "__address__": "172.20.0.7:8001",
        "__meta_docker_container_id": CONTAINER_ID,
        "__meta_docker_container_name": "/capacity-lab-api-3",
        "__meta_docker_network_name": network,
        "__meta_docker_network_ip": "172.20.0.7",
        "__meta_docker_container_label_lab_config": "r3-c0.5-m512m",
        **labels,
    }


def test_api_targets_are_the_compose_projects_api_containers(
    jobs: dict[str, dict[str, Any]],
) -> None:
    sd = jobs["api"]["docker_sd_configs"][0]

    # The socket proxy, on a network both join; Prometheus holds no Docker socket.
    assert sd["host"] == "tcp://socket-proxy:2375"
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
    assert "docker-api" in compose["prometheus"]["networks"]
    assert not [v for v in compose["prometheus"]["volumes"] if "docker.sock" in v]
    assert sd["filters"] == [
        {
            "name": "label",
            "values": ["com.docker.compose.project=capacity-lab", "com.docker.compose.service=api"],
        }
    ]
    assert sd["refresh_interval"] == "5s"


def test_api_target_is_labelled_with_the_replicas_host_name_and_config(
    jobs: dict[str, dict[str, Any]],
) -> None:
    rules = jobs["api"]["relabel_configs"]

    target = relabel(docker_sd_target("capacity-lab"), rules)

    assert target is not None
    assert target["replica"] == CONTAINER_ID[:12]
    assert target["config"] == "r3-c0.5-m512m"
    assert target["__address__"] == "172.20.0.7:8001"
    assert relabel(docker_sd_target("bridge"), rules) is None


# --------------------------------------------------------------------- cAdvisor


def cadvisor_series(cgroup: str, service: str = "api", project: str = "capacity-lab"):
    return {
        "__name__": "container_cpu_usage_seconds_total",
        "id": cgroup,
        "name": "capacity-lab-api-3",
        "image": "capacity-lab/api:0.1.0",
        "container_label_com_docker_compose_project": project,
        "container_label_com_docker_compose_service": service,
        "container_label_lab_config": "r3-c0.5-m512m",
    }


@pytest.mark.parametrize("driver", sorted(CGROUP_PATHS))
def test_cadvisor_series_of_a_replica_get_its_name_and_config(
    jobs: dict[str, dict[str, Any]], driver: str
) -> None:
    series = relabel(
        cadvisor_series(CGROUP_PATHS[driver]), jobs["cadvisor"]["metric_relabel_configs"]
    )

    assert series is not None
    assert series["replica"] == CONTAINER_ID[:12]
    assert series["config"] == "r3-c0.5-m512m"
    assert series["service"] == "api"
    assert not [name for name in series if name.startswith("container_label_")]


def test_cadvisor_series_of_other_containers_get_no_replica(
    jobs: dict[str, dict[str, Any]],
) -> None:
    rules = jobs["cadvisor"]["metric_relabel_configs"]

    traefik = relabel(cadvisor_series(CGROUP_PATHS["systemd"], service="traefik"), rules)
    foreign = relabel(cadvisor_series(CGROUP_PATHS["systemd"], project="elsewhere"), rules)
    root = relabel({"__name__": "container_cpu_usage_seconds_total", "id": "/"}, rules)

    assert traefik is not None and "replica" not in traefik and traefik["service"] == "traefik"
    assert foreign is not None and "replica" not in foreign and "config" not in foreign
    assert root == {"__name__": "container_cpu_usage_seconds_total", "id": "/"}


def test_cadvisor_keeps_the_labels_the_relabelling_reads() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    flags = dict(
        arg.lstrip("-").split("=", 1) for arg in compose["services"]["cadvisor"]["command"]
    )

    assert flags["store_container_labels"] == "false"
    kept = set(flags["whitelisted_container_labels"].split(","))
    assert kept == {"com.docker.compose.project", "com.docker.compose.service", "lab.config"}
    assert flags["housekeeping_interval"] == "5s"


RULE_TEST = """
rule_files: [{rules}]
evaluation_interval: 5s
tests:
  - interval: 5s
    input_series:
      - series: 'container_cpu_usage_seconds_total{{{series}}}'
        values: '0+1.5x40'
      - series: 'container_spec_cpu_quota{{{series}}}'
        values: '50000x40'
      - series: 'container_spec_cpu_period{{{series}}}'
        values: '100000x40'
      - series: 'container_cpu_usage_seconds_total{{job="cadvisor", service="traefik"}}'
        values: '0+5x40'
    promql_expr_test:
      - expr: replica:cpu_usage_cores:rate1m
        eval_time: 2m
        exp_samples:
          - labels: 'replica:cpu_usage_cores:rate1m{{config="r1-c0.5-m512m", replica="{replica}"}}'
            value: 0.3
      - expr: replica:cpu_usage:ratio_limit
        eval_time: 2m
        exp_samples:
          - labels: 'replica:cpu_usage:ratio_limit{{config="r1-c0.5-m512m", replica="{replica}"}}'
            value: 0.6
"""


def test_relabelled_cadvisor_series_feed_the_replica_rules(tmp_path: Path) -> None:
    test_file = tmp_path / "cadvisor_test.yml"
    rules = str(REPO / "prometheus" / "rules" / "replicas.yml")
    replica = CONTAINER_ID[:12]
    series = f'job="cadvisor", replica="{replica}", config="r1-c0.5-m512m", service="api"'
    test_file.write_text(RULE_TEST.format(rules=rules, replica=replica, series=series))

    result = promtool("test", "rules", str(test_file))

    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------- one configuration, two runtimes
# Everything the two runtimes' Prometheus does the same is compared here; each
# deliberate difference is listed, with its reason in prometheus/README.md:
#   scrape and evaluation interval  2 s natively (short experiment windows), 5 s in Docker
#   external label `runtime`        native / docker
#   rule_files                      the repository's folder / the folder mounted beside
#   discovery of the replicas       file_sd written by the launcher / Docker's API
#   cadvisor job                    Docker only (no container to read natively)
#   supervisor job                  native only (the launcher's own supervisor)
#   static targets                  loopback ports / service names
#   Prometheus major version        2 (Debian's 2.42) / 3 (prom/prometheus image)
DOCKER_ONLY_JOBS = {"cadvisor"}
NATIVE_ONLY_JOBS = {"supervisor"}
DISCOVERY_KEYS = {"static_configs", "file_sd_configs", "docker_sd_configs", "relabel_configs"}


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return yaml.safe_load(prometheus_config(NativeSettings(), tmp_path_factory.mktemp("native")))


def test_both_runtimes_differ_only_where_listed(
    config: dict[str, Any], native: dict[str, Any]
) -> None:
    docker_global, native_global = dict(config["global"]), dict(native["global"])
    for settings in (docker_global, native_global):
        # Rules are evaluated as often as series are scraped, in both.
        assert settings.pop("evaluation_interval") == settings.pop("scrape_interval")
        assert settings["external_labels"].pop("runtime")

    assert docker_global == native_global
    assert set(config) == set(native)
    docker_jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    native_jobs = {job["job_name"]: job for job in native["scrape_configs"]}
    assert set(docker_jobs) - DOCKER_ONLY_JOBS == set(native_jobs) - NATIVE_ONLY_JOBS
    for name in set(docker_jobs) & set(native_jobs):
        same_docker = {k: v for k, v in docker_jobs[name].items() if k not in DISCOVERY_KEYS}
        same_native = {k: v for k, v in native_jobs[name].items() if k not in DISCOVERY_KEYS}
        assert same_docker == same_native, name


def test_the_listed_intervals_are_what_each_runtime_says(
    config: dict[str, Any], native: dict[str, Any]
) -> None:
    compose = load_compose()
    datasources = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    [prometheus] = [d for d in datasources["datasources"] if d["uid"] == "prometheus"]
    docker_seconds = config["global"]["scrape_interval"]

    assert native["global"]["scrape_interval"] == f"{NativeSettings().scrape_interval_seconds}s"
    assert (native["global"]["scrape_interval"], docker_seconds) == ("2s", "5s")
    # What reads Docker's interval: Locust (its last push stays one scrape) and Grafana
    # ($__rate_interval), and cAdvisor samples once per scrape.
    assert compose["services"]["locust"]["environment"]["LOCUST_SCRAPE_INTERVAL"] + "s" == (
        docker_seconds
    )
    assert prometheus["jsonData"]["timeInterval"] == docker_seconds
    assert f"-housekeeping_interval={docker_seconds}" in compose["services"]["cadvisor"]["command"]


def test_prometheus_runs_with_the_same_flags_in_both_runtimes() -> None:
    compose = load_compose()
    command = compose["services"]["prometheus"]["command"]
    own = ("--config.file=", "--storage.tsdb.path=", "--web.listen-address=", "--log.level=")
    shared = [flag for flag in command if not flag.startswith(own)]

    assert sorted(shared) == sorted(PROMETHEUS_FLAGS)
    assert "--storage.tsdb.retention.time=30d" in PROMETHEUS_FLAGS
    assert "--enable-feature=exemplar-storage" in PROMETHEUS_FLAGS


def test_native_config_passes_promtool_with_the_shared_rules(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus_config(NativeSettings(), tmp_path))
    (tmp_path / "api.json").write_text("[]")
    (tmp_path / "supervisor.json").write_text("[]")

    result = promtool("check", "config", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULES)} rule files found" in result.stdout


def test_prometheus_major_versions_are_the_documented_ones() -> None:
    image = load_compose()["services"]["prometheus"]["image"]
    readme = (REPO / "prometheus" / "README.md").read_text()

    # Docker runs Prometheus 3; natively it is Debian's 2.42 (`make install`), whose
    # promtool checks the rules here: the rules must hold for both, as the README says.
    assert image.startswith("prom/prometheus:v3.")
    assert "Prometheus 2.42" in readme and "Prometheus 3" in readme
