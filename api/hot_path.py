"""The hot path: POST /predict and /predict/batch served by one short ASGI function.

Through FastAPI a prediction crosses the tracing middleware, the HTTP metrics middleware,
the body limit, FastAPI's exception and exit-stack middlewares, the router and the route,
each with its own wrapped `send`, and builds a Request and a Response on the way: that
work, not the model, was most of a request's cost (bench/README.md). Here one function
does what those layers do for these two endpoints, in the same order and with the same
definitions, and nothing else:

- the body limit: a declared Content-Length above API_MAX_BODY_BYTES, or a chunked body
  that grows past it, gets the 413 of api/body_limit.py;
- the media type, the unknown-key screen and pydantic's validation: `JsonBody`, the very
  object FastAPI's route uses, so errors are raised alike and answered by the encoders
  of api/errors.py that FastAPI's exception handlers call, byte for byte;
- the answer: the endpoint's `answer`, shared with FastAPI's route (api/routes/predict.py);
- metrics: `http_requests_total`, `http_request_duration_seconds` (with the trace-id
  exemplar of a sampled request) and `http_requests_inprogress`, with the labels the
  instrumentator gives (handler = the route's path);
- tracing: RequestTracer decides first; an unsampled request builds no span at all, a
  sampled one gets the SERVER span TracingMiddleware would give it, current while the
  model runs, so the model's span and exemplars join the trace.

Everything else (other paths and methods, /docs, /openapi.json, which FastAPI still
generates from the same models) goes on to the FastAPI stack. Overload protection
(api/overload.py) stays in front of this, unchanged. tests/api/test_hot_path.py holds
the two paths to the same answers, metrics, spans and OpenAPI schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from timeit import default_timer

from fastapi.exceptions import RequestValidationError
from opentelemetry import context
from prometheus_client import Counter, Histogram
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.batcher import BatchFailedError
from api.body_limit import payload as body_too_large
from api.errors import batch_failed_body, http_error_body, validation_error_body
from api.metrics import ServiceMetrics
from api.routes.json_body import JsonBody
from api.routes.predict import PredictEndpoint
from api.tracing import RequestTracer, activate, finish

log = logging.getLogger("api.hot_path")

Headers = list[tuple[bytes, bytes]]

_JSON = b"application/json"
# What Starlette's ServerErrorMiddleware answers to an unexpected exception.
_SERVER_ERROR = b"Internal Server Error"
_TEXT = b"text/plain; charset=utf-8"


class _TooLargeError(Exception):
    """A body without Content-Length grew past the limit."""


class _DisconnectedError(Exception):
    """The client left before its body arrived."""


def _headers(body: bytes, media_type: bytes, extra: Iterable[tuple[str, str]] = ()) -> Headers:
    """Response headers in the order Starlette's Response writes them."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    headers.append((b"content-type", media_type))
    return headers


class _Served:
    """One endpoint as the hot path holds it: the body reader and its metric series."""

    def __init__(self, endpoint: PredictEndpoint, metrics: ServiceMetrics) -> None:
        self.path = endpoint.path
        self.name = f"POST {endpoint.path}"
        self.body = JsonBody(endpoint.model)
        self.answer = endpoint.answer
        self.inprogress = metrics.inprogress_series("POST", endpoint.path)
        # Resolved on first use of each status, as the metrics middleware does.
        self.series: dict[int, tuple[Counter, Histogram]] = {}
        self._metrics = metrics

    def record(self, status: int, seconds: float, exemplar: dict[str, str] | None) -> None:
        pair = self.series.get(status)
        if pair is None:
            pair = self.series[status] = self._metrics.http_series(self.path, "POST", str(status))
        pair[0].inc()
        pair[1].observe(seconds, exemplar)


class PredictHotPath:
    """ASGI middleware serving the prediction endpoints itself (see the module's doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoints: Iterable[PredictEndpoint],
        state: State,
        metrics: ServiceMetrics,
        tracer: RequestTracer | None,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.state = state
        self.tracer = tracer
        self.max_body_bytes = max_body_bytes
        self._served = {e.path: _Served(e, metrics) for e in endpoints}
        self._too_large = body_too_large(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = self._served.get(scope["path"]) if scope["type"] == "http" else None
        if served is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = default_timer()
        content_type: bytes | None = None
        length: bytes | None = None
        traceparent: bytes | None = None
        tracestate: bytes | None = None
        # One pass over the headers; the first of each counts, as Starlette reads them.
        for name, value in scope["headers"]:
            if name == b"content-type":
                if content_type is None:
                    content_type = value
            elif name == b"content-length":
                if length is None:
                    length = value
            elif name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
        span = None
        if self.tracer is not None:
            span = self.tracer.start(served.name, traceparent, tracestate)
        token = activate(span) if span is not None else None
        served.inprogress.inc()
        status = 500
        try:
            status, body, headers = await self._answer(served, receive, content_type, length)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except _DisconnectedError:
            # Nobody to answer; counted as the FastAPI stack counts it, a 500.
            log.debug("client left before its body arrived")
        finally:
            served.inprogress.dec()
            exemplar = None
            if span is not None:
                ids = span.get_span_context()
                exemplar = {
                    "trace_id": format(ids.trace_id, "032x"),
                    "span_id": format(ids.span_id, "016x"),
                }
            served.record(status, max(default_timer() - started, 0.0), exemplar)
            if span is not None:
                finish(span, "POST", served.path, scope.get("scheme", "http"), served.path, status)
            if token is not None:
                context.detach(token)  # type: ignore[arg-type]

    async def _answer(
        self, served: _Served, receive: Receive, content_type: bytes | None, length: bytes | None
    ) -> tuple[int, bytes, Headers]:
        """(status, body, headers) of the answer; raises _DisconnectedError if there is none."""
        declared = -1
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
        if declared > self.max_body_bytes:
            return self._refuse_too_large()
        try:
            served.body.check_content_type(
                content_type.decode("latin-1") if content_type is not None else ""
            )
            body = await self._read(receive, counting=declared < 0)
            value = served.body.decode(body)
            answer = await served.answer(self.state.predictor, value)
            return 200, answer, _headers(answer, _JSON)
        except _TooLargeError:
            return self._refuse_too_large()
        except RequestValidationError as exc:
            error = validation_error_body(exc)
            return 422, error, _headers(error, _JSON)
        except HTTPException as exc:
            error = http_error_body(exc.status_code, exc.detail)
            return exc.status_code, error, _headers(error, _JSON, (exc.headers or {}).items())
        except BatchFailedError as exc:
            error = batch_failed_body(exc)
            return 503, error, _headers(error, _JSON)
        except _DisconnectedError:
            raise
        except Exception:
            log.exception("prediction failed unexpectedly")
            return 500, _SERVER_ERROR, _headers(_SERVER_ERROR, _TEXT)

    def _refuse_too_large(self) -> tuple[int, bytes, Headers]:
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(self._too_large)).encode()),
            (b"connection", b"close"),
        ]
        return 413, self._too_large, headers

    async def _read(self, receive: Receive, *, counting: bool) -> bytes:
        """The whole body. Counted against the limit only without Content-Length: the
        server already holds a declared length to its word."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if counting and len(body) > self.max_body_bytes:
                raise _TooLargeError
            return body
        chunks = [body]
        received = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _DisconnectedError
            chunk = message.get("body", b"")
            received += len(chunk)
            if counting and received > self.max_body_bytes:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
