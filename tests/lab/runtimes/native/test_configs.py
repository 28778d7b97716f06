"""Generated configuration of the native runtime, checked without starting anything."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from api.settings import ApiSettings
from lab.runtimes.native.configs import RunFiles, traefik_dynamic
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.state import Proc, Replica
from tests.support import REPO


def replicas(*ports: int) -> list[Replica]:
    return [
        Replica(name=f"replica-{i}", port=port, cpus=1.0, memory=2**30, proc=Proc(0, 0.0, ""))
        for i, port in enumerate(ports, start=1)
    ]


@pytest.fixture
def files(tmp_path: Path) -> RunFiles:
    run_files = RunFiles(NativeSettings(run_dir=tmp_path / "run", prometheus_port=19090))
    run_files.write_static(replicas(18101, 18102), "r2-c1.0-m1g")
    return run_files


def test_rendered_prometheus_config_passes_promtool(files: RunFiles) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make install`"

    result = subprocess.run(
        [promtool, "check", "config", str(files.prometheus_config)], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    config = yaml.safe_load(files.prometheus_config.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert config["rule_files"] == [str(REPO / "prometheus" / "rules" / "*.yml")]


def test_replica_targets_carry_replica_and_config(files: RunFiles) -> None:
    targets = json.loads(files.api_targets.read_text())

    assert targets == [
        {
            "targets": ["127.0.0.1:18101"],
            "labels": {"replica": "replica-1", "config": "r2-c1.0-m1g"},
        },
        {
            "targets": ["127.0.0.1:18102"],
            "labels": {"replica": "replica-2", "config": "r2-c1.0-m1g"},
        },
    ]


def test_traefik_static_keeps_the_shared_file_but_ports_and_provider(files: RunFiles) -> None:
    shared = yaml.safe_load((REPO / "traefik" / "traefik.yml").read_text())
    rendered = yaml.safe_load(files.traefik_static.read_text())

    assert rendered["entryPoints"]["web"]["address"] == "127.0.0.1:8000"
    assert rendered["providers"] == {
        "file": {"directory": str(files.traefik_dynamic_dir), "watch": True}
    }
    for key in ("metrics", "api", "ping", "log", "global"):
        assert rendered[key] == shared[key]
    assert rendered["entryPoints"]["web"]["transport"] == shared["entryPoints"]["web"]["transport"]
    assert (files.traefik_dynamic_dir / "shared.yml").read_text() == (
        REPO / "traefik" / "dynamic" / "shared.yml"
    ).read_text()


def test_traefik_routes_the_api_only_with_health_checks_and_retries() -> None:
    dynamic = traefik_dynamic(NativeSettings(), replicas(8101), "r2-c1.0-m1g")
    routers = dynamic["http"]["routers"]
    balancer = dynamic["http"]["services"]["api"]["loadBalancer"]

    # Predictions through the config's own router (its name carries the config, with `_`
    # for the dot a Traefik name cannot hold), every other API path through `api`.
    assert set(routers) == {"predict-r2-c1_0-m1g", "api"}
    assert "/predict" in routers["predict-r2-c1_0-m1g"]["rule"]
    assert "/predict" not in routers["api"]["rule"] and "/ready" in routers["api"]["rule"]
    for router in routers.values():
        assert "/metrics" not in router["rule"]
        assert router["middlewares"] == ["api-retry@file"]
        assert router["service"] == "api"
    assert balancer["healthCheck"] == {"path": "/ready", "interval": "250ms", "timeout": "5s"}
    assert balancer["servers"] == [{"url": "http://127.0.0.1:8101"}]
    assert balancer["serversTransport"] == "api-transport@file"


def test_proxy_idle_timeout_is_shorter_than_the_replicas_keep_alive() -> None:
    shared = yaml.safe_load((REPO / "traefik" / "dynamic" / "shared.yml").read_text())
    transport = shared["http"]["serversTransports"]["api-transport"]
    idle = transport["forwardingTimeouts"]["idleConnTimeout"]

    assert idle.endswith("s")
    assert int(idle[:-1]) < ApiSettings().keep_alive_seconds
    assert transport["maxIdleConnsPerHost"] > 2


def test_prometheus_scrapes_the_supervisor_where_up_says(files: RunFiles) -> None:
    files.publish_supervisor(19099)

    config = yaml.safe_load(files.prometheus_config.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sd_files = jobs["supervisor"]["file_sd_configs"][0]["files"]

    assert sd_files == [str(files.supervisor_targets)]
    assert json.loads(files.supervisor_targets.read_text()) == [
        {"targets": ["127.0.0.1:19099"], "labels": {}}
    ]
