"""Error answers for people: a 4xx naming the offending field, always valid JSON.

Pydantic's error entries may hold the offending input, and JSON cannot carry NaN or
Infinity (nor can the encoder write integers beyond 64 bits): such values are echoed as
strings, so a 422 can never turn into a 500 while it is being encoded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.batcher import BatchFailedError

log = logging.getLogger("api.errors")


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


_INT64 = range(-(2**63), 2**63)


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        # JSON allows any integer, but the encoder (and many clients) stop at 64 bits.
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, bytes):
        return value[:200].decode("utf-8", "replace")
    if depth > 3:
        return repr(value)[:200]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in list(value.items())[:20]}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value[:20]]
    return repr(value)[:200]


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as {field, loc, msg, type, input}, with a JSON-safe input."""
    described = []
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part != "body"]
        field = ".".join(str(part) for part in loc) or "body"
        entry = {
            "field": field,
            "loc": ["body", *loc],
            "msg": error.get("msg", "invalid value"),
            "type": error.get("type", "value_error"),
        }
        if error.get("type") not in ("missing", "json_invalid") and "input" in error:
            entry["input"] = _json_safe(error["input"])
        described.append(entry)
    return described


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    return json_response(
        422, {"error": "validation_error", "detail": describe_errors(exc.errors())}
    )


async def _http_error(_: Request, exc: HTTPException) -> Response:
    payload = {"error": _slug(exc.status_code), "detail": exc.detail}
    return json_response(exc.status_code, payload, headers=exc.headers)


async def _batch_failed(_: Request, exc: BatchFailedError) -> Response:
    log.error("prediction failed: %s", exc)
    return json_response(503, {"error": "inference_failed", "detail": str(exc)})


def _slug(status: int) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
        503: "unavailable",
    }.get(status, f"http_{status}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BatchFailedError, _batch_failed)
