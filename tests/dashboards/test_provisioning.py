"""Grafana's provisioning files: fixed datasource UIDs, exemplars to traces, dashboards folder."""

from __future__ import annotations

import yaml

from tests.dashboards import grafana

DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def test_prometheus_is_the_default_datasource_and_links_exemplars_to_tempo() -> None:
    config = yaml.safe_load(grafana.DATASOURCES_FILE.read_text())
    sources = {source["uid"]: source for source in config["datasources"]}

    assert config["apiVersion"] == 1
    assert set(sources) == {"prometheus", "tempo"}
    prometheus, tempo = sources["prometheus"], sources["tempo"]
    assert prometheus["type"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True
    assert prometheus["jsonData"]["exemplarTraceIdDestinations"] == [
        {
            "name": "trace_id",
            "datasourceUid": "tempo",
            "urlDisplayLabel": "Open the trace in Tempo",
        }
    ]
    assert tempo["type"] == "tempo"
    assert tempo["url"] == "http://tempo:3200"
    assert not tempo.get("isDefault")


def test_exemplar_label_is_the_one_the_api_writes() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from api.metrics import current_exemplar

    config = yaml.safe_load(grafana.DATASOURCES_FILE.read_text())
    [prometheus] = [s for s in config["datasources"] if s["uid"] == "prometheus"]
    [destination] = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    with TracerProvider().get_tracer("test").start_as_current_span("sampled request"):
        exemplar = current_exemplar()

    assert exemplar is not None
    assert destination["name"] in exemplar


def test_datasources_hold_no_secret() -> None:
    text = grafana.DATASOURCES_FILE.read_text().lower()

    for word in ("password", "secure", "token", "basicauth", "apikey"):
        assert word not in text


def test_dashboard_provider_reads_the_mounted_folder_without_ui_changes() -> None:
    config = yaml.safe_load(grafana.PROVIDERS_FILE.read_text())

    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Capacity lab"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert len(grafana.DASHBOARD_FILES) == 4
