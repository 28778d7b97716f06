"""prometheus/prometheus.docker.yml: promtool, the shared conventions, and its relabelling."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.runtimes.native.configs import prometheus_config
from lab.runtimes.native.settings import NativeSettings
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
