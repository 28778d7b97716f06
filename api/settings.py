"""Settings of the inference service, from environment variables (documented in README)."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.artefact import normalise_digest
from api.resources import parse_cpus, parse_memory


class ApiSettings(BaseSettings):
    """Every knob of one replica. Variables carry the `API_` prefix unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="API_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Where `make train` wrote model.joblib, model.onnx and metadata.json.
    model_dir: Path = Path("model")
    # Optional trust anchor: the model card digest (`card_sha256`, printed by `make train`)
    # the model must have, or the replica refuses to start. It vouches for the card and,
    # through the file digests the card lists, for both model files. Empty: not pinned.
    model_sha256: str = ""
    # The same pin read from a file (its first word), which must lie outside model_dir.
    model_digest_file: Path | None = None
    # `onnx`: the forest compiled for serving (fast); `sklearn`: the fitted joblib pipeline,
    # the source of truth and the fallback.
    engine: Literal["onnx", "sklearn"] = "onnx"
    # Micro-batching of concurrent requests (api/predictor.py says what each choice costs).
    batching: Literal["on", "off"] = "on"
    # Upper bound of rows merged into one model call.
    batch_max_rows: int = Field(default=512, ge=1, le=65536)
    # Extra wait for more rows once a batch has started; 0 never waits (no idle delay).
    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    # Instances accepted by POST /predict/batch.
    max_batch_items: int = Field(default=256, ge=1, le=10000)
    # Request bodies above this size get 413. The native runtime gives Traefik the same
    # cap (lab/runtimes/native/configs.py); traefik/dynamic/shared.yml holds this default.
    max_body_bytes: int = Field(default=262_144, ge=1024)
    # Overload protection (api/overload.py): /predict and /predict/batch answer 503 with
    # Retry-After, before reading the body, when a new prediction would wait longer than
    # this (estimated from the predictions waiting and the replica's recent throughput).
    # A quarter of the 1 s SLO, because a request also waits for the event loop before
    # the app sees it, and that wait grows with the load. Measured through Traefik with
    # one replica at 0.25 CPU and 2,500 clients (~1 s think time, ~2.5x its capacity):
    # P95 0.65-0.7 s with 0.25 (1.0 s with 0.5), /ready P95 0.3 s (1.1 s before). The
    # price: 256 clients sending back to back, which the replica alone serves at P95
    # ~0.3-0.4 s, saw 8-36 % shed (two runs on a shared host), as they sit at the bound.
    max_queue_seconds: float = Field(default=0.25, gt=0, le=60)
    # ... or while this many predictions are in progress: a bound on memory (a batch
    # request holds up to API_MAX_BATCH_ITEMS rows) and on the batcher's queue, far above
    # what the delay bound lets in on the configurations of this lab.
    max_in_flight: int = Field(default=1024, ge=1, le=100_000)
    # The Retry-After of a shed request, in seconds: about how long an overloaded
    # replica needs before the excess it turned away is worth sending again.
    retry_after_seconds: int = Field(default=1, ge=0, le=3600)
    # A model call running longer than this makes /ready answer 503 ("model_call_stuck"),
    # so the load balancer stops sending work that would wait behind it. The largest
    # batch (API_BATCH_MAX_ROWS rows, scikit-learn engine, 0.25 CPU) takes well under a
    # second; ten seconds is far beyond any call that is merely slow.
    model_call_stuck_seconds: float = Field(default=10.0, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    # Longer than Traefik's idle timeout toward the replicas (60 s), so the proxy always
    # closes an idle connection first and never sends on one the server just closed.
    keep_alive_seconds: int = Field(default=120, ge=1)
    # After SIGTERM: /ready answers 503 at once, requests are still served this long so
    # the load balancer's health check (every 250 ms) takes the replica out first.
    drain_seconds: float = Field(default=3.0, ge=0)
    # After the drain: in-flight requests get this long to finish before the exit
    # (fractions honoured; 0 cancels them at once).
    shutdown_timeout_seconds: float = Field(default=10.0, ge=0)
    access_log: bool = False
    # The event loop: asyncio (default) or uvloop. At saturation (128 connections) uvloop
    # served 5-15 % more requests, but on the fixed-answer app let some wait up to half a
    # second (P99 0.4 s against 19 ms with asyncio): `make bench` shows both.
    loop: Literal["asyncio", "uvloop"] = "asyncio"
    # HTTP metrics middleware: the lean subclass (default) or the instrumentator's stock one.
    lean_http_metrics: bool = True
    # Tracing on (the sampler decides what is recorded; unsampled requests cost a random
    # draw) or off entirely.
    tracing: bool = True
    # POST /predict and /predict/batch served by the hot path (api/hot_path.py): the same
    # contract as FastAPI's route with less work a request. `false` serves them through
    # FastAPI's routing and middleware, for benchmarks and for parity tests.
    hot_path: bool = True
    # Sampled spans written as JSON lines to this file (api/tracing.py, `span_line`), read
    # by `python -m lab trace ID`. The native runtime sets <run dir>/traces/<replica>.jsonl;
    # unset writes no file.
    traces_file: Path | None = None
    # Past this size the file becomes <file>.1 (replacing the older one) and a new one
    # starts: at most twice this on disk. 1 % of 10,000 requests/s is ~40 KB/s of spans.
    traces_file_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    # Tracked allocations (net of deallocations) between two collections of the garbage
    # collector's young generation; Python's default is 700. api/serve.py says why more.
    gc_young_threshold: int = Field(default=10_000, ge=100, le=1_000_000)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    # Deployment identity, set by the runtimes: replica name, config label, limits.
    replica: str = Field(default_factory=socket.gethostname)
    config: str = "local"
    cpu_limit: str = ""
    memory_limit: str = ""

    # Standard OpenTelemetry variables (no API_ prefix). Spans are exported over OTLP/HTTP
    # only when an endpoint is set; sampling defaults to 1 % of new traces while always
    # following the caller's decision, so tracing costs little at full load.
    otlp_endpoint: str = Field(
        default="",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    traces_sampler: str = Field(
        default="parentbased_traceidratio", validation_alias="OTEL_TRACES_SAMPLER"
    )
    traces_sampler_arg: float = Field(
        default=0.01, ge=0, le=1, validation_alias="OTEL_TRACES_SAMPLER_ARG"
    )
    service_name: str = Field(default="penguin-api", validation_alias="OTEL_SERVICE_NAME")

    @field_validator("model_sha256")
    @classmethod
    def _a_sha256(cls, value: str) -> str:
        if not value.strip():
            return ""
        digest = normalise_digest(value)
        if not digest:
            raise ValueError("must be a SHA-256 (64 hex digits), as `make train` prints it")
        return digest

    @field_validator("model_digest_file", "traces_file", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # Compose passes `API_MODEL_DIGEST_FILE=` when the variable is unset: no pin.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cpu_limit")
    @classmethod
    def _cpus_in_docker_syntax(cls, value: str) -> str:
        parse_cpus(value)
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory_in_docker_syntax(cls, value: str) -> str:
        parse_memory(value)
        return value

    @field_validator("traces_sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        known = {
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        }
        if value not in known:
            raise ValueError(f"must be one of {', '.join(sorted(known))}")
        return value

    @property
    def uses_batching(self) -> bool:
        return self.batching == "on"


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
